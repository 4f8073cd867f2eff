import { spawn } from 'node:child_process';
import { ArchiveError, Cancelled } from './errors';

export type ProcessResult = { code: number; stdout: string; stderr: string };
export type ProcessOptions = { cwd?: string; env: NodeJS.ProcessEnv; input?: string; signal?: AbortSignal; timeoutMs?: number;
  /** Output kept per stream; more is dropped (an origin's error output is not ours to store whole). */
  maxOutput?: number };

/**
 * Runs a program that talks to an origin or runs an adjuster: in its own process group, so a cancel or a
 * timeout ends it and everything it started (`git fetch` → `git-remote-http`, a script's children).
 * Always an argument array; the adjuster's shell command is the admin's, never the caller's.
 */
export function runProcess(cmd: string, args: readonly string[], opts: ProcessOptions): Promise<ProcessResult> {
  return new Promise((resolve, reject) => {
    if (opts.signal?.aborted) { reject(new Cancelled()); return; }
    const child = spawn(cmd, args, { cwd: opts.cwd, env: opts.env, detached: true, stdio: ['pipe', 'pipe', 'pipe'] });
    const max = opts.maxOutput ?? 1024 * 1024;
    const out: Buffer[] = []; const err: Buffer[] = []; let outLen = 0; let errLen = 0;
    let why: 'cancelled' | 'timeout' | null = null;
    const killGroup = () => {
      try { if (child.pid) process.kill(-child.pid, 'SIGKILL'); } catch (e) {
        // ESRCH: the group is already gone, which is what we wanted.
        if ((e as NodeJS.ErrnoException).code !== 'ESRCH') throw e;
      }
    };
    const onAbort = () => { why = 'cancelled'; killGroup(); };
    opts.signal?.addEventListener('abort', onAbort, { once: true });
    const timer = opts.timeoutMs ? setTimeout(() => { why = 'timeout'; killGroup(); }, opts.timeoutMs) : null;
    child.stdout!.on('data', (b: Buffer) => { if (outLen < max) { out.push(b); outLen += b.length; } });
    child.stderr!.on('data', (b: Buffer) => { if (errLen < max) { err.push(b); errLen += b.length; } });
    child.stdin!.on('error', () => { /* the program may exit before reading its input; its exit code tells */ });
    child.stdin!.end(opts.input ?? '');
    const done = () => { if (timer) clearTimeout(timer); opts.signal?.removeEventListener('abort', onAbort); };
    child.on('error', (e) => { done(); reject(e); });
    child.on('close', (code, signal) => {
      done();
      // The group may outlive its leader (a backgrounded child of an adjuster): it goes with it.
      if (why === null) killGroup();
      const stdout = Buffer.concat(out).toString('utf8'); const stderr = Buffer.concat(err).toString('utf8');
      if (why === 'cancelled') { reject(new Cancelled()); return; }
      if (why === 'timeout') {
        reject(new ArchiveError(`${cmd === 'git' ? `git ${args[0]}` : 'the command'} took longer than ${opts.timeoutMs} ms and was stopped`,
          'CommandTimeout', { cmd: [cmd, ...args], exitCode: 10, stderr }));
        return;
      }
      resolve({ code: code ?? (signal ? 128 : -1), stdout, stderr });
    });
  });
}
