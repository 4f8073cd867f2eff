import fs from 'node:fs';
import path from 'node:path';
import { git, runGit } from '../git';
import * as store from '../store';
import type { ArchivedTree, Repo } from '../store';
import type { ArchiveDeps, RefUpdate, TaskRun } from './context';
import { ArchiveError } from './errors';
import { archiveRepoDir } from './repos';

const ZERO = '0'.repeat(40);

/**
 * Repour's fixed identity, message and date: with no parent, a commit's id then depends on its tree alone,
 * and with a parent on the two of them; the same work done twice makes the same objects.
 */
const IDENTITY = { GIT_AUTHOR_NAME: 'Repour', GIT_AUTHOR_EMAIL: '', GIT_AUTHOR_DATE: '1970-01-01T00:00:00 +0000',
  GIT_COMMITTER_NAME: 'Repour', GIT_COMMITTER_EMAIL: '', GIT_COMMITTER_DATE: '1970-01-01T00:00:00 +0000' };

export async function commitTree(env: NodeJS.ProcessEnv, repoDir: string, tree: string, parents: string[]): Promise<string> {
  const args = ['commit-tree', tree, ...parents.flatMap((p) => ['-p', p]), '-m', 'Repour'];
  return (await git(args, { env: { ...env, ...IDENTITY, GIT_DIR: repoDir } })).trim();
}

/** An annotated tag object (not yet a ref: the ref goes through writeRefs), tagged at the fixed date. */
async function makeTag(env: NodeJS.ProcessEnv, repoDir: string, name: string, commit: string, message: string): Promise<string> {
  const text = `object ${commit}\ntype commit\ntag ${name}\ntagger Repour <> 0 +0000\n\n${message}`;
  return (await git(['mktag'], { env: { ...env, GIT_DIR: repoDir }, input: text })).trim();
}

/** The commit a ref leads to in the repository, or null. */
export async function peel(env: NodeJS.ProcessEnv, repoDir: string, rev: string): Promise<string | null> {
  const r = await runGit(['rev-parse', '--verify', '--quiet', '--end-of-options', `${rev}^{commit}`], { env: { ...env, GIT_DIR: repoDir } });
  return r.code === 0 ? r.stdout.trim() : null;
}

export async function refId(env: NodeJS.ProcessEnv, repoDir: string, ref: string): Promise<string | null> {
  const r = await runGit(['rev-parse', '--verify', '--quiet', '--end-of-options', ref], { env: { ...env, GIT_DIR: repoDir } });
  return r.code === 0 ? r.stdout.trim() : null;
}

export async function isValidTagName(env: NodeJS.ProcessEnv, name: string): Promise<boolean> {
  return name.length <= 200 && (await runGit(['check-ref-format', `refs/tags/${name}`], { env })).code === 0;
}

/**
 * Copies a commit and everything it reaches from a scratch repository into an archive repository as one
 * pack, without a fetch: a fetch would negotiate with every one of the archive's tags. No ref is written.
 */
export async function copyCommitPack(env: NodeJS.ProcessEnv, from: string, to: string, commit: string, scratch: string): Promise<void> {
  const base = path.join(scratch, 'pack');
  const hash = (await git(['pack-objects', '--revs', '-q', base], { env: { ...env, GIT_DIR: from }, input: `${commit}\n` })).trim();
  const packDir = path.join(to, 'objects', 'pack');
  // The .idx last: git uses a pack only once its index is there. Each file is renamed into place (a twin
  // request may hold the very same pack open) and one already there is left alone.
  for (const ext of ['pack', 'idx']) {
    const target = path.join(packDir, `pack-${hash}.${ext}`);
    if (fs.existsSync(target)) continue;
    const tmp = path.join(packDir, `tmp_cairn_${process.pid}_${Math.random().toString(36).slice(2)}.${ext}`);
    fs.copyFileSync(`${base}-${hash}.${ext}`, tmp);
    fs.renameSync(tmp, target);
  }
}

/** Writes ref updates through the hook server; a refusal becomes a processing error naming each ref. */
export async function writeOrFail(deps: ArchiveDeps, run: TaskRun, repo: Repo, updates: RefUpdate[]): Promise<void> {
  if (updates.length === 0) return;
  const refusals = await deps.writeRefs(run.actor, repo, updates);
  if (refusals.length > 0) {
    throw new ArchiveError(`the repository refused: ${refusals.map((r) => `${r.code} ${r.ref}: ${r.reason}`).join('; ')}`, 'RepoError',
      { exitCode: 10 });
  }
}

export type Tagging = { tree: string; commit: string; tagName: string; message: string; branch: (tag: string) => string };

/**
 * The tag of `tree` in this repository: the one it was first given, found by one indexed lookup; or a new
 * annotated tag on `commit`, with a branch holding the commit (no tagged commit is only reachable from a
 * tag). A name taken by another commit gets `-<first 8 of commit>`. Racing twins make identical objects:
 * the second's write is refused, it finds the first's tag on the same commit, and both answer alike.
 */
export async function tagTree(deps: ArchiveDeps, run: TaskRun, repo: Repo, t: Tagging): Promise<ArchivedTree> {
  const known = await store.findArchivedTree(deps.db, repo.id, t.tree);
  if (known) return known;
  const dir = archiveRepoDir(deps, repo);
  let name = t.tagName;
  let taken = await peel(deps.gitEnv, dir, `refs/tags/${name}`);
  if (taken !== null && taken !== t.commit) {
    name = `${t.tagName}-${t.commit.slice(0, 8)}`;
    taken = await peel(deps.gitEnv, dir, `refs/tags/${name}`);
    if (taken !== null && taken !== t.commit) throw new ArchiveError(`tags ${t.tagName} and ${name} are both taken by other commits`, 'RepoError');
  }
  let branch = t.branch(name);
  // A branch of that name can come from an origin (a mirror by /clone): one holding anything else is not ours.
  const atBranch = await refId(deps.gitEnv, dir, `refs/heads/${branch}`);
  if (atBranch !== null && atBranch !== t.commit) branch = `${branch}-${t.commit.slice(0, 8)}`;
  const updates: RefUpdate[] = [];
  if (taken === null) updates.push({ ref: `refs/tags/${name}`, oldId: ZERO, newId: await makeTag(deps.gitEnv, dir, name, t.commit, t.message) });
  const atOurs = await refId(deps.gitEnv, dir, `refs/heads/${branch}`);
  if (atOurs !== null && atOurs !== t.commit) throw new ArchiveError(`branches ${t.branch(name)} and ${branch} are both taken by other commits`, 'RepoError');
  if (atOurs === null) updates.push({ ref: `refs/heads/${branch}`, oldId: ZERO, newId: t.commit });
  if (updates.length > 0) {
    const refusals = await deps.writeRefs(run.actor, repo, updates);
    // Refused because a twin got there first with the same commit: that is the answer, not an error.
    if (refusals.length > 0 && !((await peel(deps.gitEnv, dir, `refs/tags/${name}`)) === t.commit &&
      (await refId(deps.gitEnv, dir, `refs/heads/${branch}`)) === t.commit)) {
      throw new ArchiveError(`the repository refused: ${refusals.map((r) => `${r.code} ${r.ref}: ${r.reason}`).join('; ')}`, 'RepoError');
    }
  }
  return store.recordArchivedTree(deps.db, { repoId: repo.id, tree: t.tree, tag: name, commit: t.commit, branch });
}
