import fs from 'node:fs';
import path from 'node:path';
import { git, runGit } from './run';
import { readRefsFromFiles } from './refs-files';

const ZERO_ID = '0'.repeat(40);

/** Where a repository lives: DATA_DIR/repos/TENANT/REPO.git (names are validated before they get here). */
export const repoPath = (reposDir: string, tenant: string, repo: string): string =>
  path.join(reposDir, tenant, `${repo}.git`);

/** Each repository's own config: the hook that guards it, and git's receive.* checks as a second line of defence. */
function repoSettings(hooksDir: string): [string, string][] {
  return [
    ['core.hooksPath', hooksDir],
    ['receive.denyDeletes', 'true'],
    ['receive.denyNonFastForwards', 'true'],
    ['receive.fsckObjects', 'true'],
    ['receive.shallowUpdate', 'false'],
    ['receive.advertisePushOptions', 'false'],
    // Every id a ref ever pointed to stays fetchable: nothing is ever pruned.
    ['gc.pruneExpire', 'never'],
    ['gc.reflogExpire', 'never'],
    ['gc.reflogExpireUnreachable', 'never'],
    ['core.logAllRefUpdates', 'always'],
    ['uploadpack.allowFilter', 'true'],
    ['uploadpack.allowAnySHA1InWant', 'true'],
    // A replace ref could make a non-fast-forward look like one to every ancestry check.
    ['core.useReplaceRefs', 'false'],
  ];
}

export async function initRepo(env: NodeJS.ProcessEnv, hooksDir: string, dir: string): Promise<void> {
  fs.mkdirSync(path.dirname(dir), { recursive: true });
  await git(['init', '--bare', '--quiet', '--', dir], { env });
  await git(['symbolic-ref', 'HEAD', 'refs/heads/main'], { cwd: dir, env });
  await wireRepo(env, hooksDir, dir);
}

/**
 * Returns true when the repository needed (and got) its settings. Every value is compared with what the
 * config holds now, so a hand-edited config is put right at the next start.
 */
export async function wireRepo(env: NodeJS.ProcessEnv, hooksDir: string, dir: string): Promise<boolean> {
  const configFile = path.join(dir, 'config');
  const current = new Map<string, string>();
  for (const line of (await git(['config', '--file', configFile, '--list'], { env })).split('\n')) {
    const eq = line.indexOf('=');
    if (eq > 0) current.set(line.slice(0, eq).toLowerCase(), line.slice(eq + 1));
  }
  let changed = false;
  for (const [key, value] of repoSettings(hooksDir)) {
    if (current.get(key.toLowerCase()) === value) continue;
    await git(['config', '--file', configFile, key, value], { env });
    changed = true;
  }
  return changed;
}

/** The current ids of exactly these refs (missing refs are absent from the map). */
async function readRefs(env: NodeJS.ProcessEnv, dir: string, refs: readonly string[]): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  if (refs.length === 0) return out;
  // Naming a few refs is cheapest; for a big push (thousands of tags) one listing of all keeps the argv short.
  const patterns = refs.length <= 64 ? refs : ['refs/heads', 'refs/tags'];
  const stdout = await git(['for-each-ref', '--format=%(objectname) %(refname)', '--', ...patterns], { cwd: dir, env });
  const wanted = new Set(refs);
  for (const line of stdout.split('\n')) {
    const sp = line.indexOf(' ');
    if (sp > 0 && wanted.has(line.slice(sp + 1))) out.set(line.slice(sp + 1), line.slice(0, sp));
  }
  return out;
}

/** The refs' ids now: from the files backend when it can tell, else from git. */
export async function currentRefs(env: NodeJS.ProcessEnv, dir: string, refs: readonly string[]): Promise<Map<string, string>> {
  return readRefsFromFiles(dir, refs) ?? readRefs(env, dir, refs);
}

export type RefEntry = { ref: string; id: string; commit: string };

/** Every branch and tag (or, with `everything`, every ref there is), annotated tags peeled to their commit. */
export async function listRefs(env: NodeJS.ProcessEnv, dir: string, everything = false): Promise<RefEntry[]> {
  const stdout = await git(['for-each-ref', '--format=%(refname) %(objectname) %(*objectname)', ...(everything ? [] : ['refs/heads', 'refs/tags'])],
    { cwd: dir, env });
  return stdout.split('\n').filter(Boolean).map((line) => {
    const [ref, id, peeled] = line.split(' ');
    return { ref, id, commit: peeled || id };
  });
}

/** Is `ancestor` reachable from `descendant`? Under a push's quarantine, `objectEnv` names its object dirs. */
async function isAncestor(env: NodeJS.ProcessEnv, dir: string, ancestor: string, descendant: string): Promise<boolean> {
  const r = await runGit(['merge-base', '--is-ancestor', ancestor, descendant], { cwd: dir, env });
  if (r.code === 0) return true;
  if (r.code === 1) return false;
  throw new Error(`git merge-base failed (${r.code}): ${r.stderr.trim()}`);
}

export type UpdateFacts = { currentId: string; isFastForward?: boolean };

/**
 * What the protection policy needs to know about each updated ref: its id on disk now and, for a branch
 * that exists, whether the new id descends from it. `objectEnv` lets git see the quarantined pack.
 */
/**
 * What the protection policy needs to know about each updated ref: its id on disk now (read under the push
 * lock) and, for a branch, whether the new id descends from it. `ancestry` is what the hook found in the
 * quarantine for old → new; it answers when the branch is still at old. Otherwise (someone pushed in
 * between) git is asked about the current id, with `objectEnv` so it sees the quarantined pack.
 */
export async function gatherFacts(env: NodeJS.ProcessEnv, dir: string, updates: readonly { ref: string; oldId: string; newId: string }[],
  ancestry: ReadonlyMap<string, boolean>, objectEnv: Record<string, string>): Promise<Map<string, UpdateFacts>> {
  const current = await currentRefs(env, dir, updates.map((u) => u.ref));
  const facts = new Map<string, UpdateFacts>();
  for (const u of updates) {
    const currentId = current.get(u.ref) ?? ZERO_ID;
    const f: UpdateFacts = { currentId };
    if (u.ref.startsWith('refs/heads/') && currentId !== ZERO_ID && u.newId !== ZERO_ID) {
      // A failing merge-base (an id git cannot find) leaves the answer unknown, and the policy refuses.
      f.isFastForward = currentId === u.oldId ? ancestry.get(u.ref)
        : await isAncestor({ ...env, ...objectEnv }, dir, currentId, u.newId).catch(() => undefined);
    }
    facts.set(u.ref, f);
  }
  return facts;
}

/**
 * `main`, `v1` or a full ref → the full ref and the commit and tree it names now (a branch before a tag, as
 * git resolves; an annotated tag peeled). Null when it names no commit.
 */
export async function resolveRef(env: NodeJS.ProcessEnv, dir: string, given: string): Promise<{ ref: string; commit: string; tree: string } | null> {
  const candidates = given.startsWith('refs/') ? [given] : [`refs/heads/${given}`, `refs/tags/${given}`];
  const found = await currentRefs(env, dir, candidates);
  for (const ref of candidates) {
    const id = found.get(ref);
    if (!id) continue;
    const r = await runGit(['rev-parse', `${id}^{commit}`, `${id}^{tree}`], { cwd: dir, env });
    const [commit, tree] = r.stdout.trim().split('\n');
    if (r.code === 0 && commit && tree) return { ref, commit, tree };
  }
  return null;
}

/** The commit an object id names (an annotated tag peeled); null when it names none. */
export async function peelCommit(env: NodeJS.ProcessEnv, dir: string, id: string): Promise<string | null> {
  const r = await runGit(['rev-parse', '--verify', '--quiet', `${id}^{commit}`], { cwd: dir, env });
  return r.code === 0 ? r.stdout.trim() : null;
}

/** Packs loose refs into packed-refs: a repository of thousands of tags advertises them several times faster. */
export async function packRefs(env: NodeJS.ProcessEnv, dir: string): Promise<void> {
  await git(['pack-refs', '--all', '--prune'], { cwd: dir, env });
}

/**
 * Like GitHub, the first branch pushed becomes the default when HEAD names none that exists: a clone
 * then checks something out. HEAD is a symbolic ref, not history, so this rewrites nothing.
 */
export async function adoptDefaultBranch(env: NodeJS.ProcessEnv, dir: string, createdBranches: readonly string[]): Promise<void> {
  if (createdBranches.length === 0) return;
  const head = (await git(['symbolic-ref', 'HEAD'], { cwd: dir, env })).trim();
  if ((await currentRefs(env, dir, [head])).has(head)) return;
  const pick = createdBranches.find((b) => b === 'refs/heads/main') ?? createdBranches.find((b) => b === 'refs/heads/master') ?? createdBranches[0];
  await git(['symbolic-ref', 'HEAD', pick], { cwd: dir, env });
}
