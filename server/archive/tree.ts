import fs from 'node:fs';
import path from 'node:path';
import { git } from '../git';
import { ArchiveError, CALLER_FAULT } from './errors';

/**
 * Writes the files under `dir` into the bare repository as a tree and returns its id, as Repour's
 * `git add -A` does: the tree's own .gitattributes apply (so a tarball made by `git archive` gives back
 * the tree it was made from), but .gitignore hides nothing (`-f`). Empty directories vanish, as in git.
 */
export async function importTree(env: NodeJS.ProcessEnv, repoDir: string, dir: string, scratch: string,
  limits: { maxBytes: number; maxEntries: number }): Promise<string> {
  let bytes = 0; let entries = 0;
  const walk = (abs: string) => {
    for (const e of fs.readdirSync(abs, { withFileTypes: true })) {
      if (++entries > limits.maxEntries) throw new ArchiveError(`the tree has more than ${limits.maxEntries} files`, 'ArchiveError', { exitCode: CALLER_FAULT });
      const p = path.join(abs, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.isFile()) {
        bytes += fs.statSync(p).size;
        if (bytes > limits.maxBytes) throw new ArchiveError(`the tree is larger than ${limits.maxBytes} bytes`, 'ArchiveError', { exitCode: CALLER_FAULT });
      }
    }
  };
  walk(dir);
  const index = path.join(scratch, `index-${process.pid}-${Date.now()}-${Math.random().toString(36).slice(2)}`);
  const indexEnv = { ...env, GIT_DIR: repoDir, GIT_WORK_TREE: dir, GIT_INDEX_FILE: index };
  try {
    await git(['-c', 'core.autocrlf=false', '-c', 'core.safecrlf=false', 'add', '-A', '-f', '--', '.'], { env: indexEnv, cwd: dir });
    return (await git(['write-tree'], { env: indexEnv, cwd: dir })).trim();
  } finally {
    fs.rmSync(index, { force: true });
  }
}

/** Writes the tree `treeId` of the bare repository out into `dir` (files, modes, symlinks), for an adjuster to change. */
export async function checkoutTree(env: NodeJS.ProcessEnv, repoDir: string, treeish: string, dir: string, scratch: string): Promise<void> {
  const index = path.join(scratch, `index-co-${process.pid}-${Date.now()}-${Math.random().toString(36).slice(2)}`);
  try {
    await git(['--work-tree', dir, 'read-tree', '--reset', '-u', treeish], { env: { ...env, GIT_DIR: repoDir, GIT_INDEX_FILE: index }, cwd: dir });
  } finally {
    fs.rmSync(index, { force: true });
  }
}
