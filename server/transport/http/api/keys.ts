import { CairnError } from '../../../errors';
import * as store from '../../../store';
import type { KeyOwner } from '../../../store';
import { parsePublicKey, requireRepoRole, requireSelfOrAdmin, requireTenantRole } from '../../../auth';
import type { Principal } from '../../../auth';
import type { ApiDeps, JsonSchema, Route } from './route';
import * as s from './schemas';
import { toApiKey } from './render';
import { pageParams, pageResponse } from './paging';

type ResolveOwner = (deps: ApiDeps, principal: Principal, params: Record<string, string>, manage: boolean) => Promise<KeyOwner>;

/** Add, list and remove keys of one owner: a user's own keys, a tenant's or a repo's deploy keys. */
function keyRoutes(base: string, what: string, access: string, body: JsonSchema, canWrite: boolean, resolve: ResolveOwner): Route[] {
  return [
    {
      method: 'post', path: base, summary: `Add ${what}`, access, body,
      responses: { 201: { description: 'added, with its SHA256 fingerprint', schema: s.sshKey },
        409: { description: 'this key is already registered somewhere', schema: s.error } },
      handler: async ({ params, body: b, principal, deps }) => {
        const owner = await resolve(deps, principal, params, true);
        const key = parsePublicKey(b.key);
        const saved = await store.insertKey(deps.db, { fingerprint: key.fingerprint, type: key.type, title: b.title,
          publicKey: key.line, owner, write: canWrite && b.write === true,
          addedByToken: principal.kind === 'user' ? principal.token?.id ?? null : null });
        deps.log.info({ key_id: saved.id, fingerprint: saved.fingerprint, owner }, 'ssh key added');
        return { status: 201, body: toApiKey(saved) };
      },
    },
    {
      method: 'get', path: base, summary: `List ${what}s`, access, paged: true,
      responses: { 200: { description: 'keys, oldest first', schema: s.list(s.sshKey) } },
      handler: async (req) => {
        const owner = await resolve(req.deps, req.principal, req.params, false);
        const { limit, after } = pageParams(req);
        return pageResponse(req, await store.listKeys(req.deps.db, owner, limit + 1, after), limit, (k) => k.id, toApiKey);
      },
    },
    {
      method: 'delete', path: `${base}/{id}`, summary: `Remove ${what}; it opens no new session from then on`, access,
      responses: { 204: { description: 'removed' } },
      handler: async ({ params, principal, deps }) => {
        const owner = await resolve(deps, principal, params, true);
        if (!/^\d{1,15}$/.test(params.id) || !(await store.deleteKey(deps.db, owner, Number(params.id)))) {
          throw new CairnError('not_found', `no key ${params.id} here`);
        }
        return { status: 204 };
      },
    },
  ];
}

export const keyRoutesAll: Route[] = [
  ...keyRoutes('/users/{user}/keys', "an SSH key to a user", 'the user, site admins', s.bodies.addKey, false,
    async (deps, principal, params) => ({ kind: 'user', userId: (await requireSelfOrAdmin(deps.db, principal, params.user)).id })),
  ...keyRoutes('/tenants/{tenant}/deploy-keys', "a read-only deploy key to a tenant (reads all its repos)", 'tenant admins',
    s.bodies.addKey, false, async (deps, principal, params, manage) =>
      ({ kind: 'tenant', tenantId: (await requireTenantRole(deps.db, principal, params.tenant, manage ? 'admin' : 'read')).tenant.id })),
  ...keyRoutes('/repos/{tenant}/{repo}/deploy-keys', 'a deploy key to a repo (read-only unless write: true)', 'repo admins',
    s.bodies.addRepoDeployKey, true, async (deps, principal, params) =>
      ({ kind: 'repo', repoId: (await requireRepoRole(deps.db, principal, params.tenant, params.repo, 'admin')).repo.id })),
];
