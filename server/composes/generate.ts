import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import type { Db, Knex } from '../db';
import * as store from '../store';
import type { Compose, Pin, Repo } from '../store';
import { git, resolveRef } from '../git';
import { latestOf, releaseDir, sha256File, sha256Stream } from '../artifacts';
import { isRelease } from '../names';
import { parseEntry, SourceType } from './request';

export type PinDeps = {
  db: Knex; gitEnv: NodeJS.ProcessEnv; repoDir: (repo: Repo) => string; artifactsDir: string; composesDir: string;
  /** May this user read this repository? (The owner's access is checked when inputs are pinned.) */
  canRead: (db: Db, userName: string, repo: Repo) => Promise<boolean>;
};

export class PinError extends Error {}

const pinText = (p: Pin): string => JSON.stringify(p.type === 'git' ? [p.type, p.repo, p.ref, p.commit, p.tree] : [p.type, p.repo, p.release, p.build_date]);
/** Equal inputs give equal keys, whatever order they were asked in. */
export const pinsKey = (pins: Pin[]): string => crypto.createHash('sha256').update(pins.map(pinText).sort().join('\n')).digest('hex');

async function readableRepo(d: PinDeps, owner: string, full: string): Promise<Repo> {
  const [tenant, name] = full.split('/');
  const repo = await store.findRepo(d.db, tenant, name);
  // One answer for a repository that does not exist and one the owner cannot read.
  if (!repo || !(await d.canRead(d.db, owner, repo))) throw new PinError(`no repository ${full}`);
  return repo;
}

/** A ref as asked (`main`, `v1`, `refs/…`) → the full ref, its commit and tree now. */
async function pinRef(d: PinDeps, repo: Repo, ref: string): Promise<Pin> {
  const found = await resolveRef(d.gitEnv, d.repoDir(repo), ref);
  if (!found) throw new PinError(`${repo.tenantName}/${repo.name} has no branch or tag "${ref}"`);
  return { type: 'git', repo: `${repo.tenantName}/${repo.name}`, ...found };
}

/** A build's directory; a path that would leave the repository's artifact tree is no build at all. */
function buildDir(d: PinDeps, repo: string, release: string, buildDate: string): string {
  const [tenant, name] = repo.split('/');
  const root = path.resolve(releaseDir(d.artifactsDir, tenant, name, ''));
  const dir = path.resolve(releaseDir(d.artifactsDir, tenant, name, release), buildDate);
  if (!isRelease(release) || !dir.startsWith(root + path.sep)) throw new PinError(`${repo} has no build ${release}@${buildDate}`);
  return dir;
}

/** A published, successful build: `latest_build` when no date is given. */
function pinBuild(d: PinDeps, repo: Repo, release: string, buildDate: string | null): Pin {
  const full = `${repo.tenantName}/${repo.name}`;
  if (!isRelease(release)) throw new PinError(`${full} has no successful build of ${release}`);
  const date = buildDate ?? latestOf(releaseDir(d.artifactsDir, repo.tenantName, repo.name, release));
  if (!date) throw new PinError(`${full} has no successful build of ${release}`);
  const dir = buildDir(d, full, release, date);
  let result = '';
  try { result = fs.readFileSync(path.join(dir, 'result'), 'utf8').trim(); } catch { /* checked below */ }
  if (result === '') throw new PinError(`${full} has no build ${release}@${date}`);
  if (result !== 'success') throw new PinError(`${full} build ${release}@${date} did not succeed`);
  return { type: 'build', repo: full, release, build_date: date };
}

/** Resolves a compose's inputs now: refs to commits, latest_build to a date, composes to their own pins. */
export async function resolvePins(d: PinDeps, c: Compose): Promise<{ pins: Pin[]; repoIds: number[] }> {
  const pins: Pin[] = [];
  const repoIds: number[] = [];
  if (c.pins) {
    // A re-creation: the pins are the point; only the owner's access is checked again.
    for (const p of c.pins) repoIds.push((await readableRepo(d, c.owner, p.repo)).id);
    return { pins: c.pins, repoIds };
  }
  for (const entry of c.source.split(' ').filter(Boolean)) {
    const parsed = parseEntry(c.sourceType as SourceType, entry);
    if (typeof parsed === 'number') {
      const other = await store.findCompose(d.db, parsed);
      const otherRepos = other ? await store.composeRepoIds(d.db, other.id) : [];
      // As the API's rule: every repository it draws on readable by this owner (its own owner's, when it draws on none).
      const visible = other && (otherRepos.length === 0 ? other.owner === c.owner : (await Promise.all(otherRepos.map(async (id) => {
        const repo = await store.findRepoById(d.db, id);
        return repo !== null && d.canRead(d.db, c.owner, repo);
      }))).every(Boolean));
      if (!other || !visible) throw new PinError(`no compose ${parsed}`);
      if (!other.pins) throw new PinError(`compose ${parsed} has no pinned inputs (it failed before they were resolved)`);
      pins.push(...other.pins);
      repoIds.push(...otherRepos);
      continue;
    }
    const repo = await readableRepo(d, c.owner, parsed.repo);
    repoIds.push(repo.id);
    pins.push('ref' in parsed ? await pinRef(d, repo, parsed.ref) : pinBuild(d, repo, parsed.release, parsed.buildDate));
  }
  const unique = new Map(pins.map((p) => [pinText(p), p]));
  return { pins: [...unique.values()], repoIds };
}

export type ManifestFile = { path: string; sha256: string; size: number; origin: Record<string, string> };

/**
 * Writes a compose's files under a hidden name and renames it into place, so nothing half-written is ever
 * served. Build outputs are hard links into the artifact tree, source tarballs hard links into a cache:
 * a compose of things that exist costs its directory entries and manifest.
 */
export async function materialize(d: PinDeps, id: number, pins: Pin[]): Promise<string> {
  const final = path.join(d.composesDir, `odcs-${id}`);
  const staging = path.join(d.composesDir, `.tmp-odcs-${id}-${crypto.randomBytes(4).toString('hex')}`);
  fs.mkdirSync(staging, { recursive: true });
  try {
    const files: ManifestFile[] = [];
    for (const p of pins) {
      if (p.type === 'git') {
        const [tenant, name] = p.repo.split('/');
        const { file, sha256, size } = await sourceTarball(d, p);
        const rel = path.join('git', tenant, name, `${p.ref.replace(/^refs\//, '')}.tar.gz`);
        fs.mkdirSync(path.dirname(path.join(staging, rel)), { recursive: true });
        fs.linkSync(file, path.join(staging, rel));
        files.push({ path: rel, sha256, size, origin: { type: 'git', repo: p.repo, ref: p.ref, commit: p.commit, tree: p.tree } });
      } else {
        const src = buildDir(d, p.repo, p.release, p.build_date);
        if (!fs.existsSync(path.join(src, 'outputs'))) throw new PinError(`${p.repo} build ${p.release}@${p.build_date} is no longer in the artifact tree`);
        const sums = readSums(path.join(src, 'SHA256SUMS'));
        const [tenant, name] = p.repo.split('/');
        const base = path.join('builds', tenant, name, ...p.release.split('/'), p.build_date);
        linkTree(path.join(src, 'outputs'), path.join(staging, base), (rel, st) => files.push({ path: path.join(base, rel),
          sha256: sums.get(path.join('outputs', rel)) ?? sha256File(path.join(src, 'outputs', rel)), size: st.size,
          origin: { type: 'build', repo: p.repo, release: p.release, build_date: p.build_date, path: `outputs/${rel}` } }));
      }
    }
    files.sort((a, b) => (a.path < b.path ? -1 : 1));
    fs.writeFileSync(path.join(staging, 'manifest.json'), `${JSON.stringify({ compose: id, pins, files }, null, 2)}\n`);
    const old = `${staging}-old`;
    if (fs.existsSync(final)) fs.renameSync(final, old);
    fs.renameSync(staging, final);
    fs.rmSync(old, { recursive: true, force: true });
    return final;
  } catch (err) {
    fs.rmSync(staging, { recursive: true, force: true });
    throw err;
  }
}

function readSums(file: string): Map<string, string> {
  const map = new Map<string, string>();
  try {
    for (const line of fs.readFileSync(file, 'utf8').split('\n')) {
      const m = /^([0-9a-f]{64}) {2}(.+)$/.exec(line);
      if (m) map.set(m[2], m[1]);
    }
  } catch { /* no sums: hashed below */ }
  return map;
}

/** Hard links every regular file (symlinks, all inside the outputs, are copied as links). */
function linkTree(from: string, to: string, each: (rel: string, st: fs.Stats) => void): void {
  const walk = (rel: string) => {
    fs.mkdirSync(path.join(to, rel), { recursive: true });
    for (const entry of fs.readdirSync(path.join(from, rel), { withFileTypes: true })) {
      const r = path.join(rel, entry.name);
      if (entry.isDirectory()) walk(r);
      else if (entry.isSymbolicLink()) fs.symlinkSync(fs.readlinkSync(path.join(from, r)), path.join(to, r));
      else if (entry.isFile()) { fs.linkSync(path.join(from, r), path.join(to, r)); each(r, fs.statSync(path.join(from, r))); }
    }
  };
  walk('');
}

/**
 * `git archive` of a pinned commit, made once per (repo, commit) into a cache and hard-linked from there:
 * git's archive of a commit is byte-for-byte stable, so a re-created compose gets the same tarball.
 */
async function sourceTarball(d: PinDeps, p: Extract<Pin, { type: 'git' }>): Promise<{ file: string; sha256: string; size: number }> {
  const key = crypto.createHash('sha256').update(`${p.repo}\n${p.commit}`).digest('hex');
  const dir = path.join(d.composesDir, '.cache', 'git');
  const file = path.join(dir, `${key}.tar.gz`);
  if (!fs.existsSync(file)) {
    fs.mkdirSync(dir, { recursive: true });
    const [tenant, name] = p.repo.split('/');
    const repo = await store.findRepo(d.db, tenant, name);
    if (!repo) throw new PinError(`no repository ${p.repo}`);
    const tmp = `${file}.${process.pid}.${crypto.randomBytes(4).toString('hex')}`;
    await git(['archive', '--format=tar.gz', `--prefix=${name}/`, '-o', tmp, p.commit], { cwd: d.repoDir(repo), env: d.gitEnv });
    // Its sum beside it, so a compose that links the tarball again does not read it again.
    fs.writeFileSync(`${file}.sha256`, await sha256Stream(tmp));
    fs.renameSync(tmp, file);
  }
  let sha256: string;
  try { sha256 = fs.readFileSync(`${file}.sha256`, 'utf8'); } catch { sha256 = await sha256Stream(file); }
  return { file, sha256, size: fs.statSync(file).size };
}
