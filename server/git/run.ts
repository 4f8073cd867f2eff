import { spawn, SpawnOptions } from 'node:child_process';
import path from 'node:path';
import fs from 'node:fs';

export type GitResult = { code: number; stdout: string; stderr: string };

/**
 * The environment every git child gets: nothing of the server's own (no secrets, no DATABASE_URL),
 * an empty HOME so a developer's ~/.gitconfig never changes how the server behaves, and no system config.
 */
export function baseGitEnv(dataDir: string, extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const home = path.join(dataDir, 'git-home');
  fs.mkdirSync(home, { recursive: true });
  return { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: home, LANG: 'C', GIT_CONFIG_NOSYSTEM: '1',
    GIT_TERMINAL_PROMPT: '0', GIT_NO_REPLACE_OBJECTS: '1', ...extra };
}

/** Runs git with an argument array (never a shell) and collects its output. */
export function runGit(args: readonly string[], opts: { cwd?: string; env: NodeJS.ProcessEnv; input?: string }): Promise<GitResult> {
  return new Promise((resolve, reject) => {
    const spawnOpts: SpawnOptions = { cwd: opts.cwd, env: opts.env, stdio: ['pipe', 'pipe', 'pipe'] };
    const child = spawn('git', args, spawnOpts);
    const out: Buffer[] = []; const err: Buffer[] = [];
    child.stdout!.on('data', (b: Buffer) => out.push(b));
    child.stderr!.on('data', (b: Buffer) => err.push(b));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code: code ?? -1, stdout: Buffer.concat(out).toString('utf8'),
      stderr: Buffer.concat(err).toString('utf8') }));
    child.stdin!.on('error', () => { /* git may exit before reading its input; its exit code tells */ });
    child.stdin!.end(opts.input ?? '');
  });
}

/** Runs git and fails on a non-zero exit, with git's own message. */
export async function git(args: readonly string[], opts: { cwd?: string; env: NodeJS.ProcessEnv; input?: string }): Promise<string> {
  const r = await runGit(args, opts);
  if (r.code !== 0) throw new Error(`git ${args[0]} failed (${r.code}): ${r.stderr.trim()}`);
  return r.stdout;
}
