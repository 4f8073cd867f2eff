import fs from 'node:fs';
import path from 'node:path';

/**
 * Reads refs straight from the files backend (git's only ref storage before reftable, and the one
 * `git init` gives every Cairn repository): a loose file, else packed-refs. It spares the push path a git
 * start-up. Anything it is not sure of (a symbolic or odd loose ref, a name it will not turn into a path)
 * returns undefined and the caller asks git.
 */
export function readRefsFromFiles(dir: string, refs: readonly string[]): Map<string, string> | undefined {
  const out = new Map<string, string>();
  let packed: Map<string, string> | null = null;
  for (const ref of refs) {
    if (!/^refs\/(heads|tags)\/[^\0\\]+$/.test(ref) || ref.split('/').some((p) => p === '' || p === '.' || p === '..')) return undefined;
    let loose: string | null = null;
    try {
      loose = fs.readFileSync(path.join(dir, ref), 'latin1');
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code !== 'ENOENT' && code !== 'ENOTDIR' && code !== 'EISDIR') throw err;
    }
    if (loose !== null) {
      const m = /^([0-9a-f]{40})\n?$/.exec(loose);
      if (!m) return undefined;
      out.set(ref, m[1]);
      continue;
    }
    packed ??= readPackedRefs(dir);
    const id = packed.get(ref);
    if (id) out.set(ref, id);
  }
  return out;
}

function readPackedRefs(dir: string): Map<string, string> {
  const map = new Map<string, string>();
  let text: string;
  try {
    text = fs.readFileSync(path.join(dir, 'packed-refs'), 'latin1');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return map;
    throw err;
  }
  for (const line of text.split('\n')) {
    if (line.length > 41 && line[40] === ' ' && /^[0-9a-f]{40}$/.test(line.slice(0, 40))) map.set(line.slice(41), line.slice(0, 40));
  }
  return map;
}
