import crypto from 'node:crypto';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';

/**
 * The artifact tree: ROOT/TENANT/REPO/RELEASE/BUILD-DATE/{outputs/, logs/, CONTEXT, result, SHA256SUMS}, with
 * RELEASE/latest_build a relative symlink to the newest successful build (as StarlingX's mirror has it).
 * A build directory appears whole or not at all: it is written under a hidden name and renamed into place.
 */

export const LATEST = 'latest_build';
export const SUMS = 'SHA256SUMS';

export const releaseDir = (root: string, tenant: string, repo: string, release: string): string =>
  path.join(root, tenant, repo, ...release.split('/'));

/** `YYYYMMDDTHHMMSSZ` in UTC. */
export const buildDateOf = (d: Date): string => d.toISOString().replace(/[-:]/g, '').replace(/\.\d{3}Z$/, 'Z');
export const BUILD_DATE = /^\d{8}T\d{6}Z$/;
export const parseBuildDate = (s: string): Date =>
  new Date(`${s.slice(0, 4)}-${s.slice(4, 6)}-${s.slice(6, 8)}T${s.slice(9, 11)}:${s.slice(11, 13)}:${s.slice(13, 15)}Z`);

export type PublishInput = {
  root: string; tenant: string; repo: string; release: string; buildDate: string;
  outputsDir: string; logFile: string; context: Record<string, string>; success: boolean;
  /** Told about each entry of the outputs that is not published, and why. */
  skipped: (entry: string, why: string) => void;
};

/** Async throughout: gigabytes of outputs are copied and hashed without stalling the server's other work. */
export async function publishBuild(p: PublishInput): Promise<string> {
  const dir = releaseDir(p.root, p.tenant, p.repo, p.release);
  fs.mkdirSync(dir, { recursive: true });
  const staging = fs.mkdtempSync(path.join(dir, `.tmp-${p.buildDate}-`));
  try {
    await copyOutputs(p.outputsDir, path.join(staging, 'outputs'), p.skipped);
    fs.mkdirSync(path.join(staging, 'logs'));
    if (fs.existsSync(p.logFile)) await fsp.copyFile(p.logFile, path.join(staging, 'logs', 'run.log'));
    fs.writeFileSync(path.join(staging, 'CONTEXT'), Object.entries(p.context).map(([k, v]) => `${k}=${shellQuote(v)}\n`).join(''));
    fs.writeFileSync(path.join(staging, 'result'), p.success ? 'success\n' : 'fail\n');
    fs.writeFileSync(path.join(staging, SUMS), await sha256Lines(staging));
    fs.chmodSync(staging, 0o755);
    fs.renameSync(staging, path.join(dir, p.buildDate));
  } catch (err) {
    fs.rmSync(staging, { recursive: true, force: true });
    throw err;
  }
  if (p.success) pointLatest(dir, p.buildDate);
  return path.join(dir, p.buildDate);
}

/** Switches latest_build with a rename, so a reader sees the old target or the new one, never neither. */
function pointLatest(dir: string, buildDate: string): void {
  const tmp = path.join(dir, `.tmp-link-${process.pid}-${crypto.randomBytes(4).toString('hex')}`);
  fs.symlinkSync(buildDate, tmp);
  fs.renameSync(tmp, path.join(dir, LATEST));
}

export function latestOf(dir: string): string | null {
  try { return fs.readlinkSync(path.join(dir, LATEST)); } catch { return null; }
}

const inside = (root: string, p: string): boolean => {
  const rel = path.relative(root, p);
  return rel === '' || (!rel.startsWith('..') && !path.isAbsolute(rel));
};

/**
 * Copies what the build left in its output dir: directories and regular files, and symlinks only when they
 * resolve inside the outputs. Anything else (links out, devices, sockets) is left behind and reported.
 */
async function copyOutputs(from: string, to: string, skipped: PublishInput['skipped']): Promise<void> {
  fs.mkdirSync(to, { recursive: true });
  const walk = async (src: string, dst: string) => {
    for (const entry of fs.readdirSync(src, { withFileTypes: true })) {
      const s = path.join(src, entry.name); const d = path.join(dst, entry.name);
      const rel = path.relative(from, s);
      if (entry.isDirectory()) { fs.mkdirSync(d); await walk(s, d); } else if (entry.isFile()) {
        await fsp.copyFile(s, d, fs.constants.COPYFILE_FICLONE);
        fs.chmodSync(d, (fs.statSync(s).mode & 0o111) ? 0o755 : 0o644);
      } else if (entry.isSymbolicLink()) {
        const target = fs.readlinkSync(s);
        if (path.isAbsolute(target) || !inside(from, path.resolve(path.dirname(s), target))) skipped(rel, `symlink to ${target} points outside the outputs`);
        else fs.symlinkSync(target, d);
      } else skipped(rel, 'not a regular file, directory or symlink');
    }
  };
  await walk(from, to);
}

/** `sha256sum`'s format for every regular file of the build but the sums themselves. */
async function sha256Lines(dir: string): Promise<string> {
  const lines: string[] = [];
  const walk = async (d: string) => {
    for (const entry of fs.readdirSync(d, { withFileTypes: true }).sort((a, b) => (a.name < b.name ? -1 : 1))) {
      const p = path.join(d, entry.name);
      if (entry.isDirectory()) await walk(p);
      else if (entry.isFile() && p !== path.join(dir, SUMS)) lines.push(`${await sha256Stream(p)}  ${path.relative(dir, p)}`);
    }
  };
  await walk(dir);
  return lines.map((l) => `${l}\n`).join('');
}

export function sha256Stream(file: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const hash = crypto.createHash('sha256');
    fs.createReadStream(file).on('data', (b) => hash.update(b)).on('end', () => resolve(hash.digest('hex'))).on('error', reject);
  });
}

export function sha256File(file: string): string {
  const hash = crypto.createHash('sha256');
  const fd = fs.openSync(file, 'r');
  try {
    const buf = Buffer.alloc(1 << 20);
    for (let n; (n = fs.readSync(fd, buf, 0, buf.length, null)) > 0;) hash.update(buf.subarray(0, n));
  } finally { fs.closeSync(fd); }
  return hash.digest('hex');
}

const shellQuote = (v: string): string => (/^[A-Za-z0-9_./:@%+=,-]*$/.test(v) ? v : `'${v.replace(/'/g, `'\\''`)}'`);

/** Removes one build directory, unless latest_build names it: that one is kept whatever its age. */
export function removeBuild(root: string, tenant: string, repo: string, release: string, buildDate: string): boolean {
  const dir = releaseDir(root, tenant, repo, release);
  if (latestOf(dir) === buildDate) return false;
  fs.rmSync(path.join(dir, buildDate), { recursive: true, force: true });
  return true;
}
