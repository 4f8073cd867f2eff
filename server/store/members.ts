import { Db, now } from '../db';

export type Role = 'read' | 'write' | 'admin';
export type Scope = { kind: 'tenant' | 'repo'; id: number };
export type Member = { id: number; userId: number; userName: string; role: Role; createdAt: string };

const table = (s: Scope) => (s.kind === 'tenant' ? 'tenant_members' : 'repo_members');
const column = (s: Scope) => (s.kind === 'tenant' ? 'tenant_id' : 'repo_id');

/** Grants or changes a role; returns true when the grant is new. */
export async function putMember(db: Db, scope: Scope, userId: number, role: Role): Promise<boolean> {
  const where = { [column(scope)]: scope.id, user_id: userId };
  const changed = await db(table(scope)).where(where).update({ role });
  if (changed > 0) return false;
  await db(table(scope)).insert({ ...where, role, created_at: now() });
  return true;
}

export async function removeMember(db: Db, scope: Scope, userId: number): Promise<boolean> {
  return (await db(table(scope)).where({ [column(scope)]: scope.id, user_id: userId }).delete()) > 0;
}

/** Grants oldest first, keyset-paged by the grant's id. */
export async function listMembers(db: Db, scope: Scope, limit = 1000, afterId = 0): Promise<Member[]> {
  const rows = await db(table(scope)).join('users', 'users.id', `${table(scope)}.user_id`)
    .where(column(scope), scope.id).andWhere(`${table(scope)}.id`, '>', afterId).orderBy(`${table(scope)}.id`).limit(limit)
    .select(`${table(scope)}.id as id`, 'users.id as user_id', 'users.name as user_name', 'role', `${table(scope)}.created_at as created_at`);
  return rows.map((r: { id: number; user_id: number; user_name: string; role: Role; created_at: string }) =>
    ({ id: r.id, userId: r.user_id, userName: r.user_name, role: r.role, createdAt: r.created_at }));
}

export async function findMember(db: Db, scope: Scope, userId: number): Promise<Member | null> {
  const row = await db(table(scope)).join('users', 'users.id', `${table(scope)}.user_id`)
    .where({ [column(scope)]: scope.id, [`${table(scope)}.user_id`]: userId })
    .first(`${table(scope)}.id as id`, 'users.id as user_id', 'users.name as user_name', 'role', `${table(scope)}.created_at as created_at`);
  return row ? { id: row.id, userId: row.user_id, userName: row.user_name, role: row.role, createdAt: row.created_at } : null;
}

export async function findRole(db: Db, scope: Scope, userId: number): Promise<Role | null> {
  const row = await db(table(scope)).where({ [column(scope)]: scope.id, user_id: userId }).first('role');
  return row ? (row.role as Role) : null;
}

/** The names of the tenants a user holds a role in: their "groups", where a group is what a rule names. */
export async function tenantsOfUser(db: Db, userId: number): Promise<string[]> {
  return (await db('tenant_members').join('tenants', 'tenants.id', 'tenant_members.tenant_id').where('tenant_members.user_id', userId)
    .select('tenants.name')).map((r: { name: string }) => r.name);
}
