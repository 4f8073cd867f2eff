import fs from 'node:fs';
import path from 'node:path';
import { SUMS } from './publish';

// Reading the artifact tree for HTTP: a URL's segments become a path that provably stays inside one repo's tree.

export type Found =
  | { kind: 'dir'; path: string; entries: Entry[] }
  | { kind: 'file'; path: string; size: number; mtime: Date; sha256: string | null };
export type Entry = { name: string; type: 'dir' | 'file'; size: number; modified: string; sha256?: string; target?: string };

/** Segments as sent (still percent-encoded); null when one cannot be a name in the tree. */
export function decodeSegments(raw: string[]): string[] | null {
  const out: string[] = [];
  for (const seg of raw) {
    let s: string;
    try { s = decodeURIComponent(seg); } catch { return null; }
    if (s === '' || s === '.' || s === '..' || /[/\\\x00]/.test(s) || s.startsWith('.tmp-')) return null;
    out.push(s);
  }
  return out;
}

/**
 * What `segments` name under `repoRoot`, following symlinks (latest_build, links inside outputs) only as
 * far as they stay under `repoRoot`'s real path. Anything else is "not found".
 */
export function findArtifact(repoRoot: string, segments: string[]): Found | null {
  let realRoot: string;
  let real: string;
  try {
    realRoot = fs.realpathSync(repoRoot);
    real = fs.realpathSync(path.join(repoRoot, ...segments));
  } catch { return null; }
  if (real !== realRoot && !real.startsWith(realRoot + path.sep)) return null;
  const st = fs.statSync(real);
  if (st.isDirectory()) return { kind: 'dir', path: real, entries: listDir(real, realRoot) };
  if (!st.isFile()) return null;
  return { kind: 'file', path: real, size: st.size, mtime: st.mtime, sha256: recordedSum(real, realRoot) };
}

function listDir(dir: string, realRoot: string): Entry[] {
  const sums = sumsAround(dir, realRoot);
  const entries: Entry[] = [];
  for (const name of fs.readdirSync(dir).sort()) {
    if (name.startsWith('.tmp-')) continue;
    let st: fs.Stats; let real: string;
    try { real = fs.realpathSync(path.join(dir, name)); st = fs.statSync(real); } catch { continue; }
    if (real !== realRoot && !real.startsWith(realRoot + path.sep)) continue;
    if (!st.isDirectory() && !st.isFile()) continue;
    const entry: Entry = { name, type: st.isDirectory() ? 'dir' : 'file', size: st.isFile() ? st.size : 0, modified: st.mtime.toISOString() };
    // latest_build (or a link in the outputs) says what it stands for.
    if (fs.lstatSync(path.join(dir, name)).isSymbolicLink()) entry.target = fs.readlinkSync(path.join(dir, name));
    const sum = st.isFile() ? sums?.get(path.relative(sums.base, path.join(dir, name))) : undefined;
    if (sum) entry.sha256 = sum;
    entries.push(entry);
  }
  return entries;
}

/** The SHA256SUMS of the build a path belongs to (the nearest ancestor that has one), keyed by path within it. */
function sumsAround(p: string, realRoot: string): (Map<string, string> & { base: string }) | null {
  for (let d = p; d.startsWith(realRoot) && d !== path.dirname(d); d = path.dirname(d)) {
    const file = path.join(d, SUMS);
    if (!fs.existsSync(file)) continue;
    const map = new Map<string, string>() as Map<string, string> & { base: string };
    map.base = d;
    for (const line of fs.readFileSync(file, 'utf8').split('\n')) {
      const m = /^([0-9a-f]{64}) {2}(.+)$/.exec(line);
      if (m) map.set(m[2], m[1]);
    }
    return map;
  }
  return null;
}

function recordedSum(file: string, realRoot: string): string | null {
  const sums = sumsAround(path.dirname(file), realRoot);
  return sums?.get(path.relative(sums.base, file)) ?? null;
}

/** A `Range: bytes=…` header against a size: the one range to send, 'unsatisfiable', or null to send it all. */
export function parseRange(header: string | undefined, size: number): { start: number; end: number } | 'unsatisfiable' | null {
  if (!header) return null;
  const m = /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  // Several ranges, or another unit: RFC 9110 lets a server ignore the header and send the whole file.
  if (!m || (m[1] === '' && m[2] === '')) return null;
  let start: number; let end: number;
  if (m[1] === '') { start = Math.max(0, size - Number(m[2])); end = size - 1; if (Number(m[2]) === 0) return 'unsatisfiable'; }
  else { start = Number(m[1]); end = m[2] === '' ? size - 1 : Math.min(Number(m[2]), size - 1); }
  if (start >= size || start > end) return 'unsatisfiable';
  return { start, end };
}
