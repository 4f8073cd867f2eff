import fs from 'node:fs';
import path from 'node:path';
import type { ArchiveDeps, TaskRun } from './context';
import { ArchiveError, CALLER_FAULT } from './errors';
import { archiveRepoDir, archiveRepoName, ensureArchiveRepo } from './repos';
import { isPullRequestRef, syncRef } from './sync';
import { commitTree, isValidTagName, peel, tagTree } from './land';
import { checkoutTree, importTree } from './tree';
import { runAdjuster } from './adjuster';
import { requireAllowedOrigin } from './origin';
import { isOriginAllowed, redactUrl } from './paths';
import { checkTreeSize } from './pull';
import { git } from '../git';

export type AdjustRequest = { ref: string; name?: string; internal_url?: { readwrite: string; readonly: string }; adjustParameters?: Record<string, unknown>;
  originRepoUrl?: string | null; sync?: boolean; buildType?: string; taskId?: string | null; [more: string]: unknown };

/** The alignment tool's version (PME's `executionRootModified.version`) names the tag, as Repour's specific_tag_name. */
function reportedVersion(data: Record<string, unknown>): string | null {
  const v = (data.VersioningState as { executionRootModified?: { version?: unknown } } | undefined)?.executionRootModified?.version;
  return typeof v === 'string' && v !== '' ? v : null;
}

/**
 * Repour's /adjust: optionally sync the ref from the origin, run the build type's adjuster on it, commit
 * the result on top of the upstream commit and tag it, or answer the tag the resulting tree already has.
 */
export async function adjust(deps: ArchiveDeps, run: TaskRun, req: AdjustRequest): Promise<Record<string, unknown>> {
  const buildType = req.buildType ?? 'MVN';
  // As Repour: URLs handed to the alignment tool must be allowed origins too, or the adjuster would reach
  // where the archive itself may not.
  const alignment = req.adjustParameters?.ALIGNMENT_PARAMETERS;
  const urls = typeof alignment === 'string' ? alignment.match(/[a-z][a-z0-9+.-]*:\/\/[^\s"']+/gi) ?? [] : [];
  const refused = urls.filter((u) => !isOriginAllowed(u, deps.config.allowedOrigins));
  if (refused.length > 0) {
    throw new ArchiveError(`Non-authorized urls used in adjust parameters: ${refused.map(redactUrl).join(', ')}`, 'AdjustCommandError', { exitCode: CALLER_FAULT });
  }
  if (!Object.prototype.hasOwnProperty.call(deps.config.adjusters, buildType)) {
    throw new ArchiveError(`no adjuster is configured for build type ${buildType}`, 'AdjustCommandError', { exitCode: CALLER_FAULT });
  }
  const syncing = Boolean(req.sync && req.originRepoUrl);
  if (syncing) requireAllowedOrigin(req.originRepoUrl!, deps.config.allowedOrigins);
  const { repo } = await ensureArchiveRepo(deps, req.internal_url ? archiveRepoName(deps, req.internal_url.readwrite) : req.name!, run.actor.userName);
  const dir = archiveRepoDir(deps, repo);
  let upstream: string | null = null;
  let internal = true;
  if (syncing) {
    upstream = await syncRef(deps, run, repo, req.originRepoUrl!, req.ref);
    internal = upstream === null;
  }
  upstream ??= await peel(deps.gitEnv, dir, req.ref);
  if (upstream === null) {
    throw new ArchiveError(`Both upstream and downstream repository do not have the '${req.ref}' present`, 'AdjustCommandError', { exitCode: CALLER_FAULT });
  }
  await checkTreeSize(deps, dir, upstream);
  const work = path.join(run.scratch, 'work');
  fs.mkdirSync(work);
  await checkoutTree(deps.gitEnv, dir, upstream, work, run.scratch);
  const { resultData } = await runAdjuster(deps, run, work, { buildType, ref: req.ref, parameters: req.adjustParameters ?? {} });
  const tree = await importTree(deps.gitEnv, dir, work, run.scratch, deps.config);
  const upstreamTree = (await git(['rev-parse', `${upstream}^{tree}`], { env: { ...deps.gitEnv, GIT_DIR: dir } })).trim();
  // Nothing changed: the upstream commit itself is tagged, as Repour tags HEAD when there is nothing to commit.
  const commit = tree === upstreamTree ? upstream : await commitTree(deps.gitEnv, dir, tree, [upstream]);
  const version = reportedVersion(resultData);
  const baseName = version && await isValidTagName(deps.gitEnv, version) ? version : `repour-${commit}`;
  // As Repour: a tag made from a pull/merge request says so, so no one takes it for a release.
  const tagName = syncing && isPullRequestRef(req.ref) ? `Pull_Request-${baseName}` : baseName;
  const tagged = await tagTree(deps, run, repo, { tree, commit, tagName,
    message: `Tag automatically generated from Repour\nOriginal Reference: ${req.ref}\nAdjust Type: ${buildType}\n`,
    branch: (tag) => `branch-repour-${tag}-${commit}` });
  return { tag: tagged.tag, commit: tagged.commit, url: deps.repoUrls(repo), upstream_commit: upstream,
    is_ref_revision_internal: internal, adjustResultData: resultData };
}
