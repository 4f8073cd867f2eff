import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import jwt from 'jsonwebtoken';
import { CairnError } from '../errors';
import { Db } from '../db';
import * as store from '../store';
import type { TokenRecord, User } from '../store';

export const DEFAULT_TOKEN_TTL_S = 30 * 24 * 3600;
export const MAX_TOKEN_TTL_S = 366 * 24 * 3600;

/** The keys dir is 0700 and the signing key 0600; made on first use by the server or the CLI alike. */
export const loadSigningKey = (keysDir: string): Buffer => loadKeyFile(keysDir, 'token-signing.key');

/** 32 random bytes kept in the keys dir (0700, the file 0600), made by whichever process needs them first. */
export function loadKeyFile(keysDir: string, name: string): Buffer {
  fs.mkdirSync(keysDir, { recursive: true, mode: 0o700 });
  fs.chmodSync(keysDir, 0o700);
  const file = path.join(keysDir, name);
  const checked = (key: Buffer): Buffer => {
    // A truncated or emptied key file would make every token trivially forgeable: refuse to start.
    if (key.length < 32) throw new Error(`${file} holds ${key.length} bytes of key; 32 or more are needed`);
    return key;
  };
  try {
    return checked(Buffer.from(fs.readFileSync(file, 'utf8').trim(), 'base64'));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  const key = crypto.randomBytes(32);
  // Written aside and linked into place: never seen half-written, and the first process to make it wins.
  const tmp = `${file}.${crypto.randomBytes(6).toString('hex')}.tmp`;
  fs.writeFileSync(tmp, key.toString('base64') + '\n', { mode: 0o600, flag: 'wx' });
  try {
    fs.linkSync(tmp, file);
    return key;
  } catch (err) {
    // Another process made it first: use theirs, so tokens signed by either stay valid.
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    return checked(Buffer.from(fs.readFileSync(file, 'utf8').trim(), 'base64'));
  } finally {
    fs.rmSync(tmp, { force: true });
  }
}

export type IssuedToken = { id: string; token: string; createdAt: string; expiresAt: string; permissions: string[] };

/** Permissions a token may carry besides its user's roles; only a site admin may grant one. */
export const TOKEN_PERMISSIONS = ['archive'] as const;

/** A signed, expiring JWT whose id (jti) is recorded so it can be revoked; the token itself is never stored. */
export async function issueToken(db: Db, key: Buffer, user: User, expiresInS: number = DEFAULT_TOKEN_TTL_S,
  issuedBy: { id: string; expiresAt: string } | null = null, permissions: string[] = []): Promise<IssuedToken> {
  if (!Number.isInteger(expiresInS) || expiresInS < 1 || expiresInS > MAX_TOKEN_TTL_S) {
    throw new CairnError('invalid_field', `expires_in must be an integer of seconds from 1 to ${MAX_TOKEN_TTL_S}`);
  }
  // A token minted with a token lives no longer than it, and is revoked with it.
  if (issuedBy) expiresInS = Math.max(1, Math.min(expiresInS, Math.floor((Date.parse(issuedBy.expiresAt) - Date.now()) / 1000)));
  const id = crypto.randomBytes(12).toString('hex');
  const expiresAt = new Date(Date.now() + expiresInS * 1000).toISOString().replace(/\.\d{3}Z$/, 'Z');
  const record = await store.insertToken(db, id, user.id, expiresAt, issuedBy?.id ?? null, [...new Set(permissions)].sort());
  const token = jwt.sign({ sub: String(user.id) }, key, { algorithm: 'HS256', jwtid: id, expiresIn: expiresInS, issuer: 'cairn' });
  return { id, token, createdAt: record.createdAt, expiresAt, permissions: record.permissions };
}

/**
 * The user a token speaks for, or null for any bad token: malformed, tampered, signed with another key,
 * `alg: none`, expired, revoked, or of a user that is gone. The reason is not told to the caller.
 */
export async function verifyToken(db: Db, key: Buffer, token: string): Promise<{ user: User; token: TokenRecord } | null> {
  let claims: jwt.JwtPayload;
  try {
    const decoded = jwt.verify(token, key, { algorithms: ['HS256'], issuer: 'cairn' });
    if (typeof decoded === 'string') return null;
    claims = decoded;
  } catch (err) {
    if (err instanceof jwt.JsonWebTokenError || err instanceof jwt.TokenExpiredError || err instanceof jwt.NotBeforeError) return null;
    throw err;
  }
  if (typeof claims.jti !== 'string' || typeof claims.sub !== 'string') return null;
  const record = await store.findToken(db, claims.jti);
  if (!record || record.revokedAt !== null || String(record.userId) !== claims.sub) return null;
  if (Date.parse(record.expiresAt) <= Date.now()) return null;
  const user = await store.findUserById(db, record.userId);
  return user ? { user, token: record } : null;
}
