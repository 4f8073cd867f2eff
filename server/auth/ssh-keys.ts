import crypto from 'node:crypto';
import { utils } from 'ssh2';
import { CairnError } from '../errors';

export type PublicKey = { type: string; blob: Buffer; fingerprint: string; line: string };

const ACCEPTED = new Set(['ssh-ed25519', 'ecdsa-sha2-nistp256', 'ecdsa-sha2-nistp384', 'ecdsa-sha2-nistp521', 'ssh-rsa']);
const MIN_RSA_BITS = 2048;

/** `SHA256:` and the unpadded base64 of the key blob's hash, exactly as `ssh-keygen -lf` prints it. */
export const fingerprintOf = (blob: Buffer): string =>
  `SHA256:${crypto.createHash('sha256').update(blob).digest('base64').replace(/=+$/, '')}`;

/**
 * One public key in OpenSSH authorized_keys form (`TYPE BASE64 [comment]`), checked: ed25519, ECDSA, or
 * RSA of at least 2048 bits. A private key pasted by mistake is refused without a word of it repeated.
 */
export function parsePublicKey(text: string): PublicKey {
  const bad = (message: string) => new CairnError('invalid_field', `key: ${message}`);
  if (/PRIVATE KEY/.test(text)) throw bad('this is a private key; send the public one (the .pub file) and keep this one secret');
  const trimmed = text.trim();
  if (trimmed.includes('\n')) throw bad('one key per request, on one line');
  const m = /^(\S+) ([A-Za-z0-9+/]+={0,3})(?: [^\r\n]*)?$/.exec(trimmed);
  if (!m) throw bad('expected OpenSSH authorized_keys form: "TYPE BASE64 [comment]" (no options)');
  const [, type, base64] = m;
  if (type === 'ssh-dss') throw bad('DSA keys are not accepted; use ed25519');
  if (!ACCEPTED.has(type)) throw bad(`unsupported key type ${type.slice(0, 40)}; use ed25519, ECDSA or RSA (2048 bits or more)`);
  const parsed = utils.parseKey(`${type} ${base64}`);
  if (parsed instanceof Error || Array.isArray(parsed)) throw bad('malformed or truncated key');
  if (parsed.isPrivateKey() || parsed.type !== type) throw bad('malformed key');
  const blob = parsed.getPublicSSH();
  if (!blob.equals(Buffer.from(base64, 'base64'))) throw bad('malformed key (trailing data)');
  if (type === 'ssh-rsa') {
    const bits = crypto.createPublicKey(parsed.getPublicPEM()).asymmetricKeyDetails?.modulusLength ?? 0;
    if (bits < MIN_RSA_BITS) throw bad(`RSA keys need at least ${MIN_RSA_BITS} bits; this one has ${bits}`);
  }
  return { type, blob, fingerprint: fingerprintOf(blob), line: `${type} ${base64}` };
}
