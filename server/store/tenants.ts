import { CairnError } from '../errors';
import { Db, Knex, mapDbError, now } from '../db';
import { nameKey } from '../names';

type TenantRow = { id: number; name: string; name_key: string; created_at: string };
export type Tenant = { id: number; name: string; createdAt: string };
const toTenant = (r: TenantRow): Tenant => ({ id: r.id, name: r.name, createdAt: r.created_at });

export async function createTenant(db: Db, name: string): Promise<Tenant> {
  try {
    const [row] = await db<TenantRow>('tenants').insert({ name, name_key: nameKey(name), created_at: now() }).returning('*');
    return toTenant(row as TenantRow);
  } catch (err) {
    throw mapDbError(err, () => new CairnError('name_taken', `tenant ${name} already exists`));
  }
}

export async function findTenant(db: Db, name: string): Promise<Tenant | null> {
  const row = await db<TenantRow>('tenants').where('name_key', nameKey(name)).first();
  return row ? toTenant(row) : null;
}

/** Tenants a user belongs to or holds a repo grant in, plus those with a public repo. */
const visibleTo = (db: Db, userId: number) => (w: Knex.QueryBuilder) => w
  .whereIn('tenants.id', db('tenant_members').select('tenant_id').where('user_id', userId))
  .orWhereIn('tenants.id', db('repos').select('tenant_id').where('public', true))
  .orWhereIn('tenants.id', db('repos').select('repos.tenant_id')
    .join('repo_members', 'repo_members.repo_id', 'repos.id').where('repo_members.user_id', userId));

/** Tenants oldest first, keyset-paged by id; `userId` null means all of them (an admin). */
export async function listTenants(db: Db, userId: number | null, limit: number, afterId: number): Promise<Tenant[]> {
  const q = db<TenantRow>('tenants').where('id', '>', afterId).orderBy('id').limit(limit);
  if (userId !== null) q.where(visibleTo(db, userId));
  return (await q).map(toTenant);
}

export async function isTenantVisible(db: Db, tenantId: number, userId: number): Promise<boolean> {
  return Boolean(await db('tenants').where('tenants.id', tenantId).where(visibleTo(db, userId)).first('id'));
}
