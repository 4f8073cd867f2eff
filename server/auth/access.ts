import { CairnError } from '../errors';
import { Db } from '../db';
import * as store from '../store';
import type { Repo, Role, SshKey, Tenant, User } from '../store';

/** Who is asking. Cairn's own pushes join this union with the pipeline issue. */
export type Principal = { kind: 'anonymous' }
  /** `token`: the API token the request came with (none over SSH, where a key speaks). */
  | { kind: 'user'; user: User; token?: { id: string; expiresAt: string; permissions: string[] } }
  | { kind: 'deploy_key'; key: SshKey };

/** The name a push record and a log line carry: the user's, or the deploy key's title. */
export const principalName = (p: Principal): string =>
  p.kind === 'user' ? p.user.name : p.kind === 'deploy_key' ? p.key.title : 'anonymous';

export const ANONYMOUS: Principal = { kind: 'anonymous' };

const RANK: Record<Role | 'none', number> = { none: 0, read: 1, write: 2, admin: 3 };
export const atLeast = (role: Role | 'none', needed: Role): boolean => RANK[role] >= RANK[needed];
const higher = (a: Role | 'none', b: Role | 'none'): Role | 'none' => (RANK[a] >= RANK[b] ? a : b);

export const isAdmin = (p: Principal): boolean => p.kind === 'user' && p.user.isAdmin;

/** One ladder: site admin → tenant grant and repo grant (the higher wins) → public read → nothing. */
export async function repoRole(db: Db, p: Principal, repo: Repo): Promise<Role | 'none'> {
  if (isAdmin(p)) return 'admin';
  let role: Role | 'none' = repo.isPublic ? 'read' : 'none';
  if (p.kind === 'user') {
    role = higher(role, (await store.findRole(db, { kind: 'tenant', id: repo.tenantId }, p.user.id)) ?? 'none');
    role = higher(role, (await store.findRole(db, { kind: 'repo', id: repo.id }, p.user.id)) ?? 'none');
  }
  if (p.kind === 'deploy_key') {
    // A tenant's deploy key reads all its repos; a repo's reads (or, when made so, writes) that repo only.
    const o = p.key.owner;
    if (o.kind === 'tenant' && o.tenantId === repo.tenantId) role = higher(role, 'read');
    if (o.kind === 'repo' && o.repoId === repo.id) role = higher(role, p.key.write ? 'write' : 'read');
  }
  return role;
}

export async function tenantRole(db: Db, p: Principal, tenant: Tenant): Promise<Role | 'none'> {
  if (isAdmin(p)) return 'admin';
  if (p.kind !== 'user') return 'none';
  return (await store.findRole(db, { kind: 'tenant', id: tenant.id }, p.user.id)) ?? 'none';
}

const unauthenticated = () => new CairnError('unauthenticated', 'authentication required',
  { 'WWW-Authenticate': 'Basic realm="Cairn", charset="UTF-8"' });

/**
 * The visibility rule, written once: a repo the caller may not read does not exist for them (404, as a
 * missing one); an anonymous caller gets 401 for both, so nothing leaks; a visible repo without the
 * needed role is 403 (401 when anonymous, so a git client asks for credentials).
 */
export async function requireRepoRole(db: Db, p: Principal, tenantName: string, repoName: string,
  needed: Role): Promise<{ repo: Repo; role: Role }> {
  const repo = await store.findRepo(db, tenantName, repoName);
  const role = repo ? await repoRole(db, p, repo) : 'none';
  if (!repo || !atLeast(role, 'read')) {
    if (p.kind === 'anonymous') throw unauthenticated();
    throw new CairnError('not_found', `repository ${tenantName}/${repoName} not found`);
  }
  if (!atLeast(role, needed)) {
    if (p.kind === 'anonymous') throw unauthenticated();
    throw new CairnError('forbidden', `${needed} access to ${repo.tenantName}/${repo.name} is required`);
  }
  return { repo, role: role as Role };
}

/** Tenants follow the same rule: visible to admins, members, and anyone who can see one of its repos. */
export async function requireTenantRole(db: Db, p: Principal, tenantName: string,
  needed: Role | 'visible'): Promise<{ tenant: Tenant; role: Role | 'none' }> {
  const user = requireUser(p);
  const tenant = await store.findTenant(db, tenantName);
  const role = tenant ? await tenantRole(db, p, tenant) : 'none';
  const visible = tenant !== null && (atLeast(role, 'read') || await store.isTenantVisible(db, tenant.id, user.id));
  if (!tenant || !visible) throw new CairnError('not_found', `tenant ${tenantName} not found`);
  if (needed !== 'visible' && !atLeast(role, needed)) {
    throw new CairnError('forbidden', `${needed} role on tenant ${tenant.name} is required`);
  }
  return { tenant, role };
}

export function requireUser(p: Principal): User {
  if (p.kind === 'deploy_key') throw new CairnError('forbidden', 'a deploy key can only clone and push');
  if (p.kind !== 'user') throw unauthenticated();
  return p.user;
}

/**
 * A token's own permission (e.g. `archive`), beyond its user's roles: only a token that was minted with it
 * has it, an admin's included, so a leaked ordinary token cannot call the archive API.
 */
export function requireTokenPermission(p: Principal, permission: string): User {
  const user = requireUser(p);
  if (p.kind !== 'user' || !p.token?.permissions.includes(permission)) {
    throw new CairnError('forbidden', `a token with the ${permission} permission is required`);
  }
  return user;
}

export function requireAdmin(p: Principal): User {
  const user = requireUser(p);
  if (!user.isAdmin) throw new CairnError('forbidden', 'only site admins may do this');
  return user;
}

/** Users see themselves; admins see everyone; anyone else is 404, as a missing user. */
export async function requireSelfOrAdmin(db: Db, p: Principal, userName: string): Promise<User> {
  const caller = requireUser(p);
  const user = await store.findUserByName(db, userName);
  if (!user || (!caller.isAdmin && user.id !== caller.id)) throw new CairnError('not_found', `user ${userName} not found`);
  return user;
}

/** Every repository the principal can read (for an admin: all of them), oldest first. */
export async function readableRepos(db: Db, p: Principal): Promise<Repo[]> {
  if (isAdmin(p)) return store.allRepos(db);
  if (p.kind === 'user') return store.reachableRepos(db, p.user.id);
  if (p.kind === 'deploy_key') {
    const o = p.key.owner;
    if (o.kind === 'repo') { const repo = await store.findRepoById(db, o.repoId); return repo ? [repo] : []; }
    if (o.kind === 'tenant') return store.listRepos(db, o.tenantId, null, 1_000_000, 0);
    return [];
  }
  return store.publicRepos(db);
}
