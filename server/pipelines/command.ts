import { spawn } from 'node:child_process';
import fs from 'node:fs';

/**
 * A run's log: one file on the data volume (so any replica can stream it), capped so a build that prints
 * gigabytes costs its disk nothing past the cap; what is dropped is counted and said at the end.
 */
export class RunLog {
  private readonly fd: number;
  private written = 0;
  private dropped = 0;

  constructor(readonly file: string, private readonly maxBytes: number) {
    this.fd = fs.openSync(file, 'a');
    this.written = fs.fstatSync(this.fd).size;
  }

  write(chunk: Buffer | string): void {
    const buf = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
    const room = this.maxBytes - this.written;
    if (room <= 0) { this.dropped += buf.length; return; }
    const part = buf.length > room ? buf.subarray(0, room) : buf;
    fs.writeSync(this.fd, part);
    this.written += part.length;
    this.dropped += buf.length - part.length;
  }

  line(text: string): void {
    // Cairn's own lines get through even past the cap: they say what happened to the run.
    const buf = Buffer.from(`[cairn] ${text}\n`);
    fs.writeSync(this.fd, buf);
    this.written += buf.length;
  }

  close(): void {
    if (this.dropped > 0) this.line(`log capped at ${this.maxBytes} bytes: ${this.dropped} more bytes were dropped`);
    fs.closeSync(this.fd);
  }
}

export type CommandResult = { code: number | null; signal: string | null; timedOut: boolean; cancelled: boolean };

const KILL_GRACE_MS = 2000;

/**
 * Runs an admin's command (`argv`: a shell, perhaps inside a sandbox) as the leader of a new process group,
 * so a timeout or a cancel (and the end of the command itself) takes down everything it started. User data
 * reaches it only through `env`.
 */
export function runCommand(argv: string[], opts: { cwd: string; env: NodeJS.ProcessEnv; timeoutMs: number; log: RunLog; signal: AbortSignal;
  started?: (pgid: number) => void }): Promise<CommandResult> {
  return new Promise((resolve) => {
    const child = spawn(argv[0], argv.slice(1), { cwd: opts.cwd, env: opts.env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
    if (child.pid !== undefined) opts.started?.(child.pid);
    let timedOut = false;
    let cancelled = false;
    let exited: { code: number | null; signal: string | null } | null = null;
    let closed = false;
    // Never after the group is gone: its id may belong to someone else by then.
    const killGroup = (sig: NodeJS.Signals) => { if (closed || child.pid === undefined) return; try { process.kill(-child.pid, sig); } catch { /* gone */ } };
    const stop = (why: 'timeout' | 'cancel') => {
      if (exited) return;
      if (why === 'timeout') timedOut = true; else cancelled = true;
      killGroup('SIGTERM');
      setTimeout(() => killGroup('SIGKILL'), KILL_GRACE_MS).unref();
    };
    const timer = setTimeout(() => stop('timeout'), opts.timeoutMs);
    const onAbort = () => stop('cancel');
    if (opts.signal.aborted) onAbort(); else opts.signal.addEventListener('abort', onAbort, { once: true });
    child.stdout!.on('data', (b: Buffer) => opts.log.write(b));
    child.stderr!.on('data', (b: Buffer) => opts.log.write(b));
    child.on('error', (err) => opts.log.line(`could not start the command: ${err.message}`));
    child.on('exit', (code, signal) => {
      exited = { code, signal };
      // Whatever it left running in the background would hold the pipes (and the machine) forever.
      killGroup('SIGKILL');
    });
    child.on('close', (code, signal) => {
      closed = true;
      clearTimeout(timer);
      opts.signal.removeEventListener('abort', onAbort);
      const end = exited ?? { code, signal };
      resolve({ code: end.code, signal: end.signal, timedOut, cancelled });
    });
  });
}
