import path from 'node:path';
import { git } from '../git';
import type { Repo } from '../store';
import type { ArchiveDeps, RefUpdate, TaskRun } from './context';
import { copyObjects, fetchAllRefs, fetchGitRef, lsRemote } from './origin';
import { refId, writeOrFail } from './land';
import { archiveRepoDir } from './repos';

const ZERO = '0'.repeat(40);
const limitsOf = (deps: ArchiveDeps) => ({ allowedOrigins: deps.config.allowedOrigins, timeoutMs: deps.config.fetchTimeoutMs,
  maxBytes: deps.config.maxBytes });

/** GitHub's `pull/N` and GitLab's `merge-requests/N`, whose commits live under `refs/<ref>/head`. */
export const isPullRequestRef = (ref: string): boolean => /^(pull|merge-requests)\/\d+$/.test(ref);

/**
 * Brings `ref` of the origin into the archive repository as Repour's sync does, never by force: a branch
 * is created or fast-forwarded, a tag created (an existing one must already be the same), and a commit id
 * becomes the lightweight tag `repour-sync-<sha>`; a pull request is fetched only. Answers the commit, or null when the origin lacks the ref.
 */
export async function syncRef(deps: ArchiveDeps, run: TaskRun, repo: Repo, originUrl: string, ref: string): Promise<string | null> {
  const src = path.join(run.scratch, 'sync.git');
  const limits = limitsOf(deps);
  if (isPullRequestRef(ref)) {
    // A pull/merge request is fetched, never synced as a ref (as Repour): its commits reach the archive
    // only as the history of the adjust commit made on top of it.
    const remote = await lsRemote(deps.gitEnv, originUrl, [`refs/${ref}/head`], src, limits, run.signal);
    if (!remote.has(`refs/${ref}/head`)) return null;
    const commit = await fetchGitRef(deps.gitEnv, originUrl, `refs/${ref}/head`, src, limits, run.signal, { shallow: false });
    await copyObjects(deps.gitEnv, src, archiveRepoDir(deps, repo), [commit]);
    return commit;
  }
  const remote = await lsRemote(deps.gitEnv, originUrl, [`refs/heads/${ref}`, `refs/tags/${ref}`], src, limits, run.signal);
  const kind = remote.has(`refs/heads/${ref}`) ? 'branch' : remote.has(`refs/tags/${ref}`) ? 'tag' : /^[0-9a-f]{40}$/.test(ref) ? 'sha' : null;
  if (kind === null) return null;
  const want = kind === 'branch' ? `refs/heads/${ref}` : kind === 'tag' ? `refs/tags/${ref}` : ref;
  let commit: string;
  try {
    commit = await fetchGitRef(deps.gitEnv, originUrl, want, src, limits, run.signal, { shallow: false });
  } catch (err) {
    // A commit id the origin does not have: the internal repository may still.
    if (kind === 'sha') return null;
    throw err;
  }
  const dir = archiveRepoDir(deps, repo);
  const tagObject = kind === 'tag' ? await refId(deps.gitEnv, src, 'FETCH_HEAD') : null;
  await copyObjects(deps.gitEnv, src, dir, [tagObject ?? commit]);
  const target = kind === 'branch' ? `refs/heads/${ref}` : kind === 'tag' ? `refs/tags/${ref}` : `refs/tags/repour-sync-${ref}`;
  const newId = tagObject ?? commit;
  const current = await refId(deps.gitEnv, dir, target);
  // An existing repour-sync tag names its commit already; any other existing ref at the same id needs nothing.
  if (current !== newId && !(kind === 'sha' && current !== null)) {
    await writeOrFail(deps, run, repo, [{ ref: target, oldId: current ?? ZERO, newId }]);
  }
  return commit;
}

/**
 * Repour's /clone without a ref: every branch and tag of the origin, in one all-or-nothing write. Branches
 * only move forward and tags never move: a rewritten origin is refused, not mirrored.
 */
export async function mirrorAll(deps: ArchiveDeps, run: TaskRun, repo: Repo, originUrl: string): Promise<void> {
  const src = path.join(run.scratch, 'mirror.git');
  const limits = limitsOf(deps);
  await fetchAllRefs(deps.gitEnv, originUrl, src, limits, run.signal);
  const listing = await git(['for-each-ref', '--format=%(objectname) %(refname)', 'refs/mirror/'], { env: { ...deps.gitEnv, GIT_DIR: src } });
  const wanted = listing.split('\n').filter(Boolean).map((l) => {
    const [id, ref] = l.split(' ');
    return [ref.replace(/^refs\/mirror\//, 'refs/'), id] as [string, string];
  });
  if (wanted.length === 0) return;
  const dir = archiveRepoDir(deps, repo);
  await copyObjects(deps.gitEnv, src, dir, [...new Set(wanted.map(([, id]) => id))]);
  const updates: RefUpdate[] = [];
  for (const [ref, id] of wanted) {
    const current = await refId(deps.gitEnv, dir, ref);
    if (current !== id) updates.push({ ref, oldId: current ?? ZERO, newId: id });
  }
  await writeOrFail(deps, run, repo, updates);
}
