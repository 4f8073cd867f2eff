import { CairnError } from '../errors';
import { Db, mapDbError, now } from '../db';

export type KeyOwner = { kind: 'user'; userId: number } | { kind: 'tenant'; tenantId: number } | { kind: 'repo'; repoId: number };
export type SshKey = { id: number; fingerprint: string; type: string; title: string; publicKey: string; owner: KeyOwner;
  write: boolean; createdAt: string };
type KeyRow = { id: number; fingerprint: string; type: string; title: string; public_key: string; user_id: number | null;
  tenant_id: number | null; repo_id: number | null; write: boolean | number; added_by_token: string | null; created_at: string };

const toKey = (r: KeyRow): SshKey => ({ id: r.id, fingerprint: r.fingerprint, type: r.type, title: r.title, publicKey: r.public_key,
  owner: r.user_id !== null ? { kind: 'user', userId: r.user_id } : r.tenant_id !== null ? { kind: 'tenant', tenantId: r.tenant_id }
    : { kind: 'repo', repoId: r.repo_id as number },
  write: Boolean(r.write), createdAt: r.created_at });

const ownerColumns = (o: KeyOwner) => ({ user_id: o.kind === 'user' ? o.userId : null,
  tenant_id: o.kind === 'tenant' ? o.tenantId : null, repo_id: o.kind === 'repo' ? o.repoId : null });

export async function insertKey(db: Db, k: { fingerprint: string; type: string; title: string; publicKey: string; owner: KeyOwner;
  write: boolean; addedByToken?: string | null }): Promise<SshKey> {
  try {
    const [row] = await db<KeyRow>('ssh_keys').insert({ fingerprint: k.fingerprint, type: k.type, title: k.title,
      public_key: k.publicKey, ...ownerColumns(k.owner), write: k.write, added_by_token: k.addedByToken ?? null, created_at: now() }).returning('*');
    return toKey(row as KeyRow);
  } catch (err) {
    throw mapDbError(err, () => new CairnError('conflict', `this key (${k.fingerprint}) is already registered; a key identifies one principal`));
  }
}

export async function findKeyByFingerprint(db: Db, fingerprint: string): Promise<SshKey | null> {
  const row = await db<KeyRow>('ssh_keys').where('fingerprint', fingerprint).first();
  return row ? toKey(row) : null;
}

/** An owner's keys oldest first, keyset-paged by id. */
export async function listKeys(db: Db, owner: KeyOwner, limit = 1000, afterId = 0): Promise<SshKey[]> {
  const cols = ownerColumns(owner);
  const [column, value] = Object.entries(cols).find(([, v]) => v !== null)!;
  return (await db<KeyRow>('ssh_keys').where(column, value).andWhere('id', '>', afterId).orderBy('id').limit(limit)).map(toKey);
}

export async function deleteKey(db: Db, owner: KeyOwner, id: number): Promise<boolean> {
  return (await db('ssh_keys').where({ id, ...ownerColumns(owner) }).delete()) > 0;
}
