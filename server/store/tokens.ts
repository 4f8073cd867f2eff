import { Db, now } from '../db';

type TokenRow = { id: string; user_id: number; created_at: string; expires_at: string; revoked_at: string | null;
  issued_by: string | null; permissions?: string | null };
/** `permissions`: what the token may do besides its user's roles (`archive`: call the archive API). */
export type TokenRecord = { id: string; userId: number; createdAt: string; expiresAt: string; revokedAt: string | null;
  permissions: string[] };
const toToken = (r: TokenRow): TokenRecord =>
  ({ id: r.id, userId: r.user_id, createdAt: r.created_at, expiresAt: r.expires_at, revokedAt: r.revoked_at,
    permissions: r.permissions ? JSON.parse(r.permissions) as string[] : [] });

export async function insertToken(db: Db, id: string, userId: number, expiresAt: string, issuedBy: string | null = null,
  permissions: string[] = []): Promise<TokenRecord> {
  const row: TokenRow = { id, user_id: userId, created_at: now(), expires_at: expiresAt, revoked_at: null, issued_by: issuedBy,
    permissions: permissions.length > 0 ? JSON.stringify(permissions) : null };
  await db('tokens').insert(row);
  return toToken(row);
}

export async function findToken(db: Db, id: string): Promise<TokenRecord | null> {
  const row = await db<TokenRow>('tokens').where('id', id).first();
  return row ? toToken(row) : null;
}

/** Oldest first; tokens are few per user, so ordering by creation then id is enough for paging. */
export async function listTokens(db: Db, userId: number): Promise<TokenRecord[]> {
  return (await db<TokenRow>('tokens').where('user_id', userId).orderBy([{ column: 'created_at' }, { column: 'id' }])).map(toToken);
}

/**
 * Returns false when there was no such live token of that user. Tokens it minted (and theirs) go with it,
 * and so do the SSH keys any of them added: a revoked token leaves no way back in.
 */
export async function revokeToken(db: Db, userId: number, id: string): Promise<boolean> {
  const at = now();
  const n = await db('tokens').where({ id, user_id: userId }).whereNull('revoked_at').update({ revoked_at: at });
  for (let revoked = n > 0 ? [id] : []; revoked.length > 0;) {
    await db('ssh_keys').whereIn('added_by_token', revoked).delete();
    const children = (await db<TokenRow>('tokens').whereIn('issued_by', revoked).whereNull('revoked_at').select('id')).map((r) => r.id);
    if (children.length > 0) await db('tokens').whereIn('id', children).update({ revoked_at: at });
    revoked = children;
  }
  return n > 0;
}
