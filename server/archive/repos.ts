import { CairnError } from '../errors';
import { nameProblem } from '../names';
import * as store from '../store';
import type { Repo } from '../store';
import { repoPath } from '../git';
import type { ArchiveDeps } from './context';
import { ArchiveError, CALLER_FAULT } from './errors';

/** The archive tenant's repository `name`, made (with its tenant) on first use; two racing requests both get it. */
export async function ensureArchiveRepo(deps: ArchiveDeps, name: string, createdBy: string): Promise<{ repo: Repo; created: boolean }> {
  const why = nameProblem('repo', name);
  if (why) throw new ArchiveError(why, 'RepoError', { exitCode: CALLER_FAULT });
  const existing = await store.findRepo(deps.db, deps.config.tenant, name);
  if (existing) return { repo: existing, created: false };
  let tenant = await store.findTenant(deps.db, deps.config.tenant);
  if (!tenant) {
    try { tenant = await store.createTenant(deps.db, deps.config.tenant); } catch (err) {
      if (!(err instanceof CairnError && err.code === 'name_taken')) throw err;
      tenant = (await store.findTenant(deps.db, deps.config.tenant))!;
    }
  }
  try {
    return { repo: await deps.createRepo(tenant, name, createdBy), created: true };
  } catch (err) {
    if (!(err instanceof CairnError && err.code === 'name_taken')) throw err;
    return { repo: (await store.findRepo(deps.db, deps.config.tenant, name))!, created: false };
  }
}

/**
 * The archive repository a URL this server gave out names (`…/TENANT/REPO.git` over HTTP or SSH, or
 * scp-style). Only the archive tenant's repositories are the archive's to write.
 */
export function archiveRepoName(deps: ArchiveDeps, url: string): string {
  const m = /[/:]([^/:]+)\/([^/]+?)(?:\.git)?\/?$/.exec(url);
  if (!m || m[1].toLowerCase() !== deps.config.tenant.toLowerCase()) {
    throw new ArchiveError(`${url} is not a repository of the archive tenant ${deps.config.tenant} on this server`, 'RepoError', { exitCode: CALLER_FAULT });
  }
  return m[2];
}

export const archiveRepoDir = (deps: ArchiveDeps, repo: Repo): string => repoPath(deps.reposDir, repo.tenantName, repo.name);
