import { CairnError } from '../../../errors';
import * as store from '../../../store';
import type { Role, Scope } from '../../../store';
import type { Principal } from '../../../auth';
import type { ApiDeps, Route } from './route';
import * as s from './schemas';
import { toApiMember } from './render';
import { pageParams, pageResponse } from './paging';

type ResolveScope = (deps: ApiDeps, principal: Principal, params: Record<string, string>, needed: Role) => Promise<Scope>;

/** Grants on a tenant or a repo: the same three routes, with the scope and who may manage it passed in. */
export function memberRoutes(kind: 'tenant' | 'repo', base: string, resolve: ResolveScope): Route[] {
  const findUser = async (deps: ApiDeps, name: string) => {
    const user = await store.findUserByName(deps.db, name);
    if (!user) throw new CairnError('not_found', `user ${name} not found`);
    return user;
  };
  return [
    {
      method: 'get', path: `${base}/members`, summary: `List the ${kind}'s members and their roles`,
      access: `${kind} admins`, paged: true,
      responses: { 200: { description: 'members, oldest grant first', schema: s.list(s.member) } },
      handler: async (req) => {
        // Who holds which role is for those who manage it, not for every reader of a public repo.
        const scope = await resolve(req.deps, req.principal, req.params, 'admin');
        const { limit, after } = pageParams(req);
        return pageResponse(req, await store.listMembers(req.deps.db, scope, limit + 1, after), limit, (m) => m.id, toApiMember);
      },
    },
    {
      method: 'put', path: `${base}/members/{user}`, summary: `Grant or change a user's role on the ${kind}`,
      access: `${kind} admins`, body: s.bodies.putMember,
      responses: { 200: { description: 'role changed', schema: s.member }, 201: { description: 'role granted', schema: s.member },
        403: { description: `not a ${kind} admin`, schema: s.error } },
      handler: async ({ params, body, principal, deps }) => {
        const scope = await resolve(deps, principal, params, 'admin');
        const user = await findUser(deps, params.user);
        const created = await store.putMember(deps.db, scope, user.id, body.role);
        const member = (await store.findMember(deps.db, scope, user.id))!;
        return { status: created ? 201 : 200, body: toApiMember(member) };
      },
    },
    {
      method: 'delete', path: `${base}/members/{user}`, summary: `Remove a user's role on the ${kind}`,
      access: `${kind} admins`,
      responses: { 204: { description: 'removed' }, 403: { description: `not a ${kind} admin`, schema: s.error } },
      handler: async ({ params, principal, deps }) => {
        const scope = await resolve(deps, principal, params, 'admin');
        const user = await findUser(deps, params.user);
        if (!(await store.removeMember(deps.db, scope, user.id))) {
          throw new CairnError('not_found', `${user.name} holds no role on this ${kind}`);
        }
        return { status: 204 };
      },
    },
  ];
}
