import { CairnError } from '../errors';
import { Db, mapDbError, now } from '../db';
import { nameKey } from '../names';

type RepoRow = { id: number; tenant_id: number; name: string; name_key: string; public: boolean | number;
  archived: boolean | number; created_at: string; tenant_name?: string };
export type Repo = { id: number; tenantId: number; tenantName: string; name: string; isPublic: boolean;
  isArchived: boolean; createdAt: string };
const toRepo = (r: RepoRow): Repo => ({ id: r.id, tenantId: r.tenant_id, tenantName: r.tenant_name ?? '', name: r.name,
  isPublic: Boolean(r.public), isArchived: Boolean(r.archived), createdAt: r.created_at });

const withTenant = (db: Db) => db<RepoRow>('repos')
  .join('tenants', 'tenants.id', 'repos.tenant_id').select('repos.*', 'tenants.name as tenant_name');

export async function createRepo(db: Db, tenant: { id: number; name: string }, name: string, isPublic: boolean): Promise<Repo> {
  try {
    const [row] = await db<RepoRow>('repos').insert({ tenant_id: tenant.id, name, name_key: nameKey(name),
      public: isPublic, archived: false, created_at: now() }).returning('*');
    return toRepo({ ...(row as RepoRow), tenant_name: tenant.name });
  } catch (err) {
    throw mapDbError(err, () => new CairnError('name_taken', `repo ${tenant.name}/${name} already exists`));
  }
}

export async function findRepo(db: Db, tenantName: string, repoName: string): Promise<Repo | null> {
  const row = await withTenant(db).where('tenants.name_key', nameKey(tenantName)).andWhere('repos.name_key', nameKey(repoName)).first();
  return row ? toRepo(row) : null;
}

export async function findRepoById(db: Db, id: number): Promise<Repo | null> {
  const row = await withTenant(db).where('repos.id', id).first();
  return row ? toRepo(row) : null;
}

export async function allRepos(db: Db): Promise<Repo[]> {
  return (await withTenant(db).orderBy('repos.id')).map(toRepo);
}

/**
 * A tenant's repos oldest first. `visibleTo` (a user id) keeps public repos and those the user is granted,
 * directly or through the tenant; null means all (an admin); 'anonymous' keeps the public ones.
 */
export async function listRepos(db: Db, tenantId: number, visibleTo: number | null | 'anonymous',
  limit: number, afterId: number): Promise<Repo[]> {
  const q = withTenant(db).where('repos.tenant_id', tenantId).andWhere('repos.id', '>', afterId).orderBy('repos.id').limit(limit);
  if (visibleTo === 'anonymous') q.andWhere('repos.public', true);
  else if (visibleTo !== null) {
    q.andWhere((w) => w.where('repos.public', true)
      .orWhereIn('repos.id', db('repo_members').select('repo_id').where('user_id', visibleTo))
      .orWhereExists(db('tenant_members').select(db.raw('1'))
        .where('tenant_members.user_id', visibleTo).andWhereRaw('tenant_members.tenant_id = repos.tenant_id')));
  }
  return (await q).map(toRepo);
}

export async function updateRepo(db: Db, id: number, changes: { isPublic?: boolean; isArchived?: boolean }): Promise<void> {
  const row: Partial<RepoRow> = {};
  if (changes.isPublic !== undefined) row.public = changes.isPublic;
  if (changes.isArchived !== undefined) row.archived = changes.isArchived;
  if (Object.keys(row).length > 0) await db('repos').where('id', id).update(row);
}

/** Every repo a user holds a grant on, directly or through its tenant, plus the public ones; oldest first. */
export async function reachableRepos(db: Db, userId: number): Promise<Repo[]> {
  return (await withTenant(db).where((w) => w.where('repos.public', true)
    .orWhereIn('repos.id', db('repo_members').select('repo_id').where('user_id', userId))
    .orWhereIn('repos.tenant_id', db('tenant_members').select('tenant_id').where('user_id', userId)))
    .orderBy('repos.id')).map(toRepo);
}

export async function publicRepos(db: Db): Promise<Repo[]> {
  return (await withTenant(db).where('repos.public', true).orderBy('repos.id')).map(toRepo);
}
