import crypto from 'node:crypto';
import { ArchiveError } from './errors';

export type RepourResult = { status: number; body: unknown };

const traceback = (err: unknown): string => crypto.createHash('md5').update(String((err as Error)?.stack ?? err)).digest('hex');

/**
 * An error in Repour's shapes: a processing error is 400 `{desc, error_type, error_traceback, cmd,
 * exit_code, stderr}`; anything else is 500 `{error_type, error_traceback}` (the traceback is a hash, so
 * nothing of the server's insides is shown).
 */
export function errorResult(err: unknown): RepourResult {
  if (err instanceof ArchiveError) {
    return { status: 400, body: { desc: err.desc, error_type: err.errorType, error_traceback: traceback(err), cmd: err.cmd ?? null,
      exit_code: err.exitCode ?? null, stderr: err.stderr ?? null } };
  }
  return { status: 500, body: { error_type: (err as Error)?.name ?? 'Error', error_traceback: traceback(err) } };
}

/** Repour's callback id: 30 random bytes in base32, 48 characters of A-Z2-7. */
export function callbackId(): string {
  const bytes = crypto.randomBytes(30);
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
  let bits = 0; let value = 0; let out = '';
  for (const b of bytes) {
    value = (value << 8) | b; bits += 8;
    while (bits >= 5) { out += alphabet[(value >>> (bits - 5)) & 31]; bits -= 5; }
    value &= (1 << bits) - 1;
  }
  return out;
}
