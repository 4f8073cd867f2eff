import fs from 'node:fs';
import path from 'node:path';
import { git } from '../git';
import type { ArchiveDeps, TaskRun } from './context';
import { ArchiveError, CALLER_FAULT } from './errors';
import { downloadArchive, fetchGitRef } from './origin';
import { archiveRepoDir, ensureArchiveRepo } from './repos';
import { checkoutTree, importTree } from './tree';
import { unpackArchive, unwrapSingleDir } from './unpack';
import { commitTree, copyCommitPack, tagTree } from './land';
import * as store from '../store';
import { runAdjuster } from './adjuster';

export type PullRequest = { name: string; type: 'git' | 'archive'; url: string; ref?: string | null; adjust?: boolean };

const limitsOf = (deps: ArchiveDeps) => ({ allowedOrigins: deps.config.allowedOrigins, timeoutMs: deps.config.fetchTimeoutMs,
  maxBytes: deps.config.maxBytes });

/** Refuses a commit whose tree is too big before it is written out (a small pack can hold a huge tree). */
export async function checkTreeSize(deps: ArchiveDeps, repoDir: string, commit: string): Promise<void> {
  const listing = await git(['ls-tree', '-r', '-l', '-z', commit], { env: { ...deps.gitEnv, GIT_DIR: repoDir } });
  let bytes = 0; let entries = 0;
  for (const line of listing.split('\0')) {
    if (!line) continue;
    entries++;
    const size = Number(/^\S+ \S+ \S+ +(\d+|-)\t/.exec(line)?.[1]);
    if (Number.isFinite(size)) bytes += size;
  }
  if (entries > deps.config.maxEntries) throw new ArchiveError(`the tree has more than ${deps.config.maxEntries} files`, 'PullCommandError', { exitCode: CALLER_FAULT });
  if (bytes > deps.config.maxBytes) throw new ArchiveError(`the tree is larger than ${deps.config.maxBytes} bytes`, 'PullCommandError', { exitCode: CALLER_FAULT });
}

/** The origin's files for `ref`, written out under the scratch dir; answers their directory. */
async function originFiles(deps: ArchiveDeps, run: TaskRun, req: PullRequest, src: string): Promise<string> {
  const files = path.join(run.scratch, 'files');
  fs.mkdirSync(files);
  if (req.type === 'git') {
    const commit = await fetchGitRef(deps.gitEnv, req.url, req.ref ?? null, src, limitsOf(deps), run.signal, { shallow: true });
    await checkTreeSize(deps, src, commit);
    await checkoutTree(deps.gitEnv, src, commit, files, run.scratch);
    return files;
  }
  const download = path.join(run.scratch, 'origin.download');
  await downloadArchive(req.url, download, limitsOf(deps), run.signal);
  await unpackArchive(download, files, { maxBytes: deps.config.maxBytes, maxEntries: deps.config.maxEntries });
  fs.rmSync(download, { force: true });
  return unwrapSingleDir(files);
}

/**
 * Repour's /pull: the origin's tree, with no upstream history, as an orphan commit of fixed identity
 * tagged `repour-<commit>` on `branch-pull-<commit>`. The same tree again answers the first tag.
 */
export async function pull(deps: ArchiveDeps, run: TaskRun, req: PullRequest): Promise<Record<string, unknown>> {
  // The tree is made in a scratch repository: finding it already archived never touches the archive
  // repository, so the answer costs the same with 10 tags or 100,000.
  const staging = path.join(run.scratch, 'origin.git');
  const files = await originFiles(deps, run, req, staging);
  if (!fs.existsSync(staging)) await git(['init', '-q', '--bare', staging], { env: deps.gitEnv });
  const { repo } = await ensureArchiveRepo(deps, req.name, run.actor.userName);
  const dir = archiveRepoDir(deps, repo);
  const url = deps.repoUrls(repo);
  const tree = await importTree(deps.gitEnv, staging, files, run.scratch, deps.config);
  const seen = await store.findArchivedTree(deps.db, repo.id, tree);
  if (seen && !req.adjust) return { branch: seen.branch, tag: seen.tag, url };
  const commit = await commitTree(deps.gitEnv, staging, tree, []);
  if (!seen) await copyCommitPack(deps.gitEnv, staging, dir, commit, run.scratch);
  const pulled = seen ?? await tagTree(deps, run, repo, { tree, commit, tagName: `repour-${commit}`,
    message: `Origin: ${req.url}\nReference: ${req.ref ?? 'HEAD'}\nType: ${req.type}\n`, branch: () => `branch-pull-${commit}` });
  const pullAnswer = { branch: pulled.branch, tag: pulled.tag, url };
  if (!req.adjust) return pullAnswer;
  // Classic /pull with adjust: the adjuster of the default build type, its commit's parent the pulled one.
  const adjusted = await runAdjuster(deps, run, files, { buildType: 'MVN', ref: pulled.tag, parameters: {} });
  const adjustedTree = await importTree(deps.gitEnv, dir, files, run.scratch, deps.config);
  if (adjustedTree === tree) return { ...pullAnswer, pull: pullAnswer };
  const adjustCommit = await commitTree(deps.gitEnv, dir, adjustedTree, [pulled.commit]);
  const a = await tagTree(deps, run, repo, { tree: adjustedTree, commit: adjustCommit, tagName: `repour-${adjustCommit}`,
    message: `Tag automatically generated from Repour\nOriginal Reference: ${pulled.tag}\nAdjust Type: MVN\n`,
    branch: () => `branch-adjust-${adjustCommit}` });
  return { branch: a.branch, tag: a.tag, url, adjustResultData: adjusted.resultData, pull: pullAnswer };
}
