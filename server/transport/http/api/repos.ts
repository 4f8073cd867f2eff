import { CairnError } from '../../../errors';
import { inTransaction } from '../../../db';
import * as store from '../../../store';
import type { Tenant } from '../../../store';
import { requireRepoRole } from '../../../auth';
import { initRepo, listRefs, repoPath } from '../../../git';
import { appendEvent } from '../../../events';
import type { ApiDeps, Route } from './route';
import * as s from './schemas';
import { toApiPush, toApiRepo } from './render';
import { pageParams, pageResponse } from './paging';
import { memberRoutes } from './members';

/** The row, its event and the bare repository come into being together: a failed `git init` leaves nothing. */
export async function createRepo(deps: Pick<ApiDeps, 'db' | 'gitEnv' | 'config'>, tenant: Tenant, name: string, isPublic: boolean, createdBy: string) {
  return inTransaction(deps.db, async (trx) => {
    const repo = await store.createRepo(trx, tenant, name, isPublic);
    await initRepo(deps.gitEnv, deps.config.hooksDir, repoPath(deps.config.reposDir, tenant.name, name));
    await appendEvent(trx, repo.id, 'repo.created', { user: createdBy, public: isPublic }, repo.createdAt);
    return repo;
  });
}

const repoPathOf = (deps: ApiDeps, r: { tenantName: string; name: string }) => repoPath(deps.config.reposDir, r.tenantName, r.name);

export const repoRoutes: Route[] = [
  {
    method: 'get', path: '/repos/{tenant}/{repo}', summary: 'Get a repository', access: 'read',
    responses: { 200: { description: 'the repository', schema: s.repo } },
    handler: async ({ params, principal, deps }) =>
      ({ status: 200, body: toApiRepo(deps, (await requireRepoRole(deps.db, principal, params.tenant, params.repo, 'read')).repo) }),
  },
  {
    method: 'patch', path: '/repos/{tenant}/{repo}', summary: 'Archive a repository (for good) or change its visibility',
    access: 'repo admins', body: s.bodies.patchRepo,
    responses: { 200: { description: 'the changed repository', schema: s.repo }, 403: { description: 'not a repo admin', schema: s.error } },
    handler: async ({ params, body, principal, deps }) => {
      const { repo } = await requireRepoRole(deps.db, principal, params.tenant, params.repo, 'admin');
      // Archiving is one-way: a build that pinned an archived repo must find it exactly as it was.
      if (body.archived === false && repo.isArchived) throw new CairnError('invalid_field', 'archived: an archived repository stays archived');
      await store.updateRepo(deps.db, repo.id, { isArchived: body.archived, isPublic: body.public });
      return { status: 200, body: toApiRepo(deps, (await store.findRepoById(deps.db, repo.id))!) };
    },
  },
  {
    method: 'delete', path: '/repos/{tenant}/{repo}', summary: 'Never allowed: repositories are never deleted', access: 'nobody',
    responses: { 405: { description: 'repositories are never deleted; archive instead', schema: s.error } },
    handler: async ({ params, principal, deps }) => {
      await requireRepoRole(deps.db, principal, params.tenant, params.repo, 'read');
      throw new CairnError('repo_never_deleted',
        'repositories are never deleted, so their URLs and tags stay valid forever; archive it with PATCH {"archived": true}',
        { Allow: 'GET, PATCH' });
    },
  },
  {
    method: 'get', path: '/repos/{tenant}/{repo}/refs', summary: "A repository's branches and tags (annotated tags peeled)",
    access: 'read',
    responses: { 200: { description: 'branches and tags by short name', schema: s.refs } },
    handler: async ({ params, principal, deps }) => {
      const { repo } = await requireRepoRole(deps.db, principal, params.tenant, params.repo, 'read');
      const refs = await listRefs(deps.gitEnv, repoPathOf(deps, repo));
      const pick = (prefix: string) => refs.filter((r) => r.ref.startsWith(prefix))
        .map((r) => ({ name: r.ref.slice(prefix.length), commit: r.commit }));
      return { status: 200, body: { branches: pick('refs/heads/'), tags: pick('refs/tags/') } };
    },
  },
  {
    method: 'get', path: '/repos/{tenant}/{repo}/pushes', summary: "A repository's push ledger, oldest first",
    access: 'read', paged: true,
    responses: { 200: { description: 'accepted pushes with their ref updates and ledger hashes', schema: s.list(s.push) } },
    handler: async (req) => {
      const { repo } = await requireRepoRole(req.deps.db, req.principal, req.params.tenant, req.params.repo, 'read');
      const { limit, after } = pageParams(req);
      const pushes = await store.listAcceptedPushes(req.deps.db, repo.id, limit + 1, after);
      return pageResponse(req, pushes, limit, (p) => p.seq as number, toApiPush);
    },
  },
  ...memberRoutes('repo', '/repos/{tenant}/{repo}', async (deps, principal, params, needed) => {
    const { repo } = await requireRepoRole(deps.db, principal, params.tenant, params.repo, needed);
    return { kind: 'repo', id: repo.id };
  }),
];
