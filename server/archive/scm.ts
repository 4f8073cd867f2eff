import type { ArchiveDeps, TaskRun } from './context';
import { ArchiveError, CALLER_FAULT } from './errors';
import { git } from '../git';
import { archiveRepoDir, archiveRepoName, ensureArchiveRepo } from './repos';
import { mirrorAll, syncRef } from './sync';
import { requireAllowedOrigin } from './origin';

export type CloneRequest = { type: 'git'; ref?: string | null; originRepoUrl: string; targetRepoUrl: string; [more: string]: unknown };

/**
 * Repour's /clone, except that nothing is forced: the ref (or, without one, every branch and tag) of the
 * origin into the target archive repository. Answers the request, as Repour does.
 */
export async function clone(deps: ArchiveDeps, run: TaskRun, req: CloneRequest): Promise<Record<string, unknown>> {
  requireAllowedOrigin(req.originRepoUrl, deps.config.allowedOrigins);
  const { repo } = await ensureArchiveRepo(deps, archiveRepoName(deps, req.targetRepoUrl), run.actor.userName);
  // As Repour: a target without a branch or tag gets everything; one that has some gets the ref alone.
  const isNew = (await git(['for-each-ref', '--count=1', 'refs/heads', 'refs/tags'], { env: { ...deps.gitEnv, GIT_DIR: archiveRepoDir(deps, repo) } })).trim() === '';
  if (req.ref && !isNew) {
    const commit = await syncRef(deps, run, repo, req.originRepoUrl, req.ref);
    if (commit === null) throw new ArchiveError(`the origin has no ref ${req.ref}`, 'CloneError', { exitCode: CALLER_FAULT });
  } else {
    await mirrorAll(deps, run, repo, req.originRepoUrl);
  }
  return { type: req.type, ref: req.ref ?? null, originRepoUrl: req.originRepoUrl, targetRepoUrl: req.targetRepoUrl };
}

export type InternalScmRequest = { project: string; owner_groups: string[]; description?: string; parent_project?: string };

/** Repour's /internal-scm: the archive repository for a project, made when missing. A `group/name` project is `group-name`. */
export async function internalScm(deps: ArchiveDeps, run: TaskRun, req: InternalScmRequest): Promise<Record<string, unknown>> {
  const { repo, created } = await ensureArchiveRepo(deps, req.project.replace(/\//g, '-'), run.actor.userName);
  const url = deps.repoUrls(repo);
  return { status: created ? 'SUCCESS_CREATED' : 'SUCCESS_ALREADY_EXISTS', readonly_url: url.readonly, readwrite_url: url.readwrite };
}

/**
 * Repour's /git-external-to-internal: where an external repository is (or would be) archived. `org/repo`
 * becomes the archive repository `org-repo`. An unsupported URL is a plain error (500), as in Repour.
 */
export function externalToInternal(deps: ArchiveDeps, externalUrl: string): { external_url: string; internal_url: string } {
  const m = /^(?:(?:https?|git|git\+ssh|ssh):\/\/(?:[^@/]+@)?[^/]+|git@[^:/]+[:/])\/?(.*)$/.exec(externalUrl);
  if (!m) throw new Error(`unsupported URL: ${externalUrl.slice(0, 200)}`);
  const parts = m[1].replace(/\/+$/, '').replace(/\.git$/, '').split('/').filter(Boolean);
  if (parts.length === 0) throw new Error(`no repository in URL: ${externalUrl.slice(0, 200)}`);
  const repoName = parts[parts.length - 1];
  const org = parts.length > 1 ? parts[parts.length - 2] : null;
  const name = org && org !== 'gerrit' ? `${org}-${repoName}` : repoName;
  const url = deps.repoUrls({ tenantName: deps.config.tenant, name });
  return { external_url: externalUrl, internal_url: url.readwrite };
}
