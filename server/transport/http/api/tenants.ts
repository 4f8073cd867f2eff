import { CairnError } from '../../../errors';
import { nameProblem } from '../../../names';
import * as store from '../../../store';
import { isAdmin, principalName, requireAdmin, requireTenantRole, requireUser } from '../../../auth';
import type { Route } from './route';
import * as s from './schemas';
import { toApiMember, toApiRepo, toApiTenant } from './render';
import { pageParams, pageResponse } from './paging';
import { createRepo } from './repos';
import { memberRoutes } from './members';

export function checkName(kind: 'tenant' | 'user' | 'repo', name: string): void {
  const problem = nameProblem(kind, name);
  if (problem) throw new CairnError('invalid_field', problem);
}

export const tenantRoutes: Route[] = [
  {
    method: 'post', path: '/tenants', summary: 'Create a tenant', access: 'site admins', body: s.bodies.createTenant,
    responses: { 201: { description: 'created', schema: s.tenant }, 409: { description: 'name taken', schema: s.error } },
    handler: async ({ body, principal, deps }) => {
      requireAdmin(principal);
      checkName('tenant', body.name);
      return { status: 201, body: toApiTenant(await store.createTenant(deps.db, body.name)) };
    },
  },
  {
    method: 'get', path: '/tenants', summary: 'List the tenants the caller can see', access: 'any user', paged: true,
    responses: { 200: { description: 'tenants, oldest first', schema: s.list(s.tenant) } },
    handler: async (req) => {
      const user = requireUser(req.principal);
      const { limit, after } = pageParams(req);
      const tenants = await store.listTenants(req.deps.db, isAdmin(req.principal) ? null : user.id, limit + 1, after);
      return pageResponse(req, tenants, limit, (t) => t.id, toApiTenant);
    },
  },
  {
    method: 'get', path: '/tenants/{tenant}', summary: 'Get a tenant', access: 'anyone who can see it',
    responses: { 200: { description: 'the tenant', schema: s.tenant } },
    handler: async ({ params, principal, deps }) =>
      ({ status: 200, body: toApiTenant((await requireTenantRole(deps.db, principal, params.tenant, 'visible')).tenant) }),
  },
  {
    method: 'post', path: '/tenants/{tenant}/repos', summary: 'Create a repository (private unless public: true)',
    access: 'tenant admins', body: s.bodies.createRepo,
    responses: { 201: { description: 'created', schema: s.repo }, 409: { description: 'name taken', schema: s.error } },
    handler: async ({ params, body, principal, deps }) => {
      const { tenant } = await requireTenantRole(deps.db, principal, params.tenant, 'admin');
      checkName('repo', body.name);
      return { status: 201, body: toApiRepo(deps, await createRepo(deps, tenant, body.name, body.public ?? false, principalName(principal))) };
    },
  },
  {
    method: 'get', path: '/tenants/{tenant}/repos', summary: "List a tenant's repositories the caller can see",
    access: 'anyone who can see the tenant', paged: true,
    responses: { 200: { description: 'repositories, oldest first', schema: s.list(s.repo) } },
    handler: async (req) => {
      const { tenant, role } = await requireTenantRole(req.deps.db, req.principal, req.params.tenant, 'visible');
      const user = requireUser(req.principal);
      const { limit, after } = pageParams(req);
      const repos = await store.listRepos(req.deps.db, tenant.id, role === 'none' ? user.id : null, limit + 1, after);
      return pageResponse(req, repos, limit, (r) => r.id, (r) => toApiRepo(req.deps, r));
    },
  },
  ...memberRoutes('tenant', '/tenants/{tenant}', async (deps, principal, params, needed) => {
    const { tenant } = await requireTenantRole(deps.db, principal, params.tenant, needed);
    return { kind: 'tenant', id: tenant.id };
  }),
];

export { toApiMember };
