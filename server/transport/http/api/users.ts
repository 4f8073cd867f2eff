import { CairnError } from '../../../errors';
import * as store from '../../../store';
import { issueToken, requireAdmin, requireSelfOrAdmin, requireUser } from '../../../auth';
import type { Route } from './route';
import * as s from './schemas';
import { toApiToken, toApiUser } from './render';
import { pageParams, pageResponse } from './paging';
import { checkName } from './tenants';

export const userRoutes: Route[] = [
  {
    method: 'post', path: '/users', summary: 'Create a user', access: 'site admins', body: s.bodies.createUser,
    responses: { 201: { description: 'created', schema: s.user }, 409: { description: 'name taken', schema: s.error } },
    handler: async ({ body, principal, deps }) => {
      requireAdmin(principal);
      checkName('user', body.name);
      return { status: 201, body: toApiUser(await store.createUser(deps.db, body.name, body.admin ?? false)) };
    },
  },
  {
    method: 'get', path: '/users', summary: 'List users', access: 'site admins', paged: true,
    responses: { 200: { description: 'users, oldest first', schema: s.list(s.user) } },
    handler: async (req) => {
      requireAdmin(req.principal);
      const { limit, after } = pageParams(req);
      return pageResponse(req, await store.listUsers(req.deps.db, limit + 1, after), limit, (u) => u.id, toApiUser);
    },
  },
  {
    method: 'get', path: '/user', summary: 'The caller', access: 'any user',
    responses: { 200: { description: 'the user the credentials speak for', schema: s.user } },
    handler: async ({ principal }) => ({ status: 200, body: toApiUser(requireUser(principal)) }),
  },
  {
    method: 'get', path: '/users/{user}', summary: 'Get a user', access: 'the user, site admins',
    responses: { 200: { description: 'the user', schema: s.user } },
    handler: async ({ params, principal, deps }) =>
      ({ status: 200, body: toApiUser(await requireSelfOrAdmin(deps.db, principal, params.user)) }),
  },
  {
    method: 'post', path: '/users/{user}/tokens',
    summary: 'Issue a token (shown once; default 30 days). One a user mints with their own token never outlives it and is revoked with it. `permissions: ["archive"]` (site admins only) lets it call the archive API at /repour',
    access: 'the user, site admins', body: s.bodies.createToken,
    responses: { 201: { description: 'the token; store it now, it cannot be shown again', schema: s.issuedToken } },
    handler: async ({ params, body, principal, deps }) => {
      const user = await requireSelfOrAdmin(deps.db, principal, params.user);
      // A user minting their own token with a token: the new one is bounded by the old (a leaked token cannot
      // outlive its revocation). An admin minting for someone else is an administrative act of its own.
      const parent = principal.kind === 'user' && principal.user.id === user.id ? principal.token ?? null : null;
      // A permission (archive) is granted by a site admin only: it reaches beyond the user's own repos.
      const permissions: string[] = body.permissions ?? [];
      if (permissions.length > 0) requireAdmin(principal);
      const t = await issueToken(deps.db, deps.signingKey, user, body.expires_in, parent, permissions);
      return { status: 201, body: { id: t.id, token: t.token, created_at: t.createdAt, expires_at: t.expiresAt, permissions: t.permissions } };
    },
  },
  {
    method: 'get', path: '/users/{user}/tokens', summary: "List a user's tokens (never the secrets)", access: 'the user, site admins',
    responses: { 200: { description: 'tokens, oldest first', schema: s.list(s.tokenInfo) } },
    handler: async ({ params, principal, deps }) => {
      const user = await requireSelfOrAdmin(deps.db, principal, params.user);
      return { status: 200, body: (await store.listTokens(deps.db, user.id)).map(toApiToken) };
    },
  },
  {
    method: 'delete', path: '/users/{user}/tokens/{id}',
    summary: 'Revoke a token, effective on the next request; the tokens it minted and the SSH keys they added go with it',
    access: 'the user, site admins',
    responses: { 204: { description: 'revoked' } },
    handler: async ({ params, principal, deps }) => {
      const user = await requireSelfOrAdmin(deps.db, principal, params.user);
      if (!(await store.revokeToken(deps.db, user.id, params.id))) throw new CairnError('not_found', `no live token ${params.id}`);
      return { status: 204 };
    },
  },
];

