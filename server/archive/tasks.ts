import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { leaseAbandoned, leaseHolder } from '../db';
import * as store from '../store';
import type { ArchiveTask, NewTask } from '../store';
import { metrics } from '../metrics';
import type { ArchiveDeps, TaskRun } from './context';
import { Cancelled } from './errors';
import { errorResult, RepourResult } from './render';

const TICK_MS = 200;
const LEASE_MS = 30_000;
const CALLBACK_TIMEOUT_MS = 10_000;
/** Repour's schedule: the first send at once, then after 2, 4, … 256 s; 9 sends at most. */
export const MAX_CALLBACK_SENDS = 9;
export const callbackDelayMs = (sendsSoFar: number, baseMs: number): number => baseMs * 2 ** (sendsSoFar - 1);

export type Operation = (run: TaskRun, request: Record<string, unknown>) => Promise<Record<string, unknown>>;

/**
 * Every archive request is a task row. A synchronous one runs in the process that answers it; a callback
 * one waits in the queue for any replica's worker. Running tasks are leased and heartbeaten; the heartbeat
 * also reads their cancel flags, so `POST /repour/cancel` on any replica stops them (processes included).
 * Callbacks are sent from the same rows with Repour's retry schedule, so they survive a restart.
 */
export class ArchiveTasks {
  private readonly owner = leaseHolder();
  private readonly scratchRoot: string;
  private readonly running = new Map<string, AbortController>();
  private readonly queued = new Set<Promise<unknown>>();
  private timer: NodeJS.Timeout | null = null;
  private ticking: Promise<void> | null = null;
  private stopped = false;
  private shuttingDown = false;

  constructor(private readonly deps: ArchiveDeps, private readonly operations: Record<string, Operation>,
    private readonly isAlive: (pid: number) => boolean) {
    this.scratchRoot = path.join(deps.workDir, `${os.hostname()}-${process.pid}`);
  }

  /** Runs a task now, for a synchronous request; resolves to what the request is answered. */
  async runNow(task: NewTask): Promise<RepourResult> {
    await store.insertTask(this.deps.db, task, { owner: this.owner, leaseMs: LEASE_MS });
    return this.execute({ ...task, request: task.request });
  }

  /** Queues a callback task; a worker (here or on another replica) runs it. */
  async enqueue(task: NewTask): Promise<void> {
    await store.insertTask(this.deps.db, task, null);
  }

  /**
   * Work this host's earlier processes held when they died: callback tasks are queued again (their work is
   * idempotent: same tree, same tag), synchronous ones abandoned (their caller is gone), callbacks re-sent.
   */
  async reclaimOrphans(): Promise<number> {
    // Scratch dirs of this host's dead processes (a task's checkout, a download) are of no use to anyone.
    for (const name of fs.existsSync(this.deps.workDir) ? fs.readdirSync(this.deps.workDir) : []) {
      const pid = name.startsWith(`${os.hostname()}-`) ? Number(name.slice(os.hostname().length + 1)) : NaN;
      if (Number.isSafeInteger(pid) && (pid === process.pid || !this.isAlive(pid))) fs.rmSync(path.join(this.deps.workDir, name), { recursive: true, force: true });
    }
    let n = 0;
    for (const w of await store.leasedArchiveWork(this.deps.db, `${os.hostname()}:`)) {
      if (leaseAbandoned(w.owner, null, true, this.isAlive)) { await store.releaseDeadWork(this.deps.db, w.id, w.kind, w.hasCallback); n++; }
    }
    return n;
  }

  start(): void {
    const loop = () => {
      if (this.stopped) return;
      this.ticking = this.tick().catch((err) => this.deps.log.error({ err }, 'archive worker tick failed'))
        .finally(() => { if (!this.stopped) this.timer = setTimeout(loop, TICK_MS); });
    };
    loop();
  }

  /** Stops claiming; running tasks' processes are killed and their rows left leased, for the next start to take back. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.shuttingDown = true;
    if (this.timer) clearTimeout(this.timer);
    await this.ticking;
    for (const c of this.running.values()) c.abort();
    await Promise.allSettled([...this.queued]);
  }

  private async tick(): Promise<void> {
    const cancelled = await store.heartbeat(this.deps.db, [...this.running.keys()], this.owner, LEASE_MS);
    await store.abandonExpiredSyncTasks(this.deps.db);
    for (const id of cancelled) this.running.get(id)?.abort();
    const free = this.deps.config.workers - this.queued.size;
    for (const task of await store.claimTasks(this.deps.db, free, this.owner, LEASE_MS)) {
      const p = this.execute(task).catch((err) => this.deps.log.error({ err, task: task.id }, 'archive task failed'))
        .finally(() => this.queued.delete(p));
      this.queued.add(p);
    }
    const due = await store.claimDueCallbacks(this.deps.db, 8, this.owner, CALLBACK_TIMEOUT_MS * 3);
    await Promise.all(due.map((c) => this.send(c)));
  }

  private async execute(task: Pick<ArchiveTask, 'id' | 'endpoint' | 'request' | 'userId' | 'userName' | 'taskId'>): Promise<RepourResult> {
    const controller = new AbortController();
    this.running.set(task.id, controller);
    fs.mkdirSync(this.scratchRoot, { recursive: true });
    const scratch = fs.mkdtempSync(path.join(this.scratchRoot, 'task-'));
    const started = process.hrtime.bigint();
    let result: RepourResult;
    try {
      const operation = this.operations[task.endpoint];
      if (!operation) throw new Error(`no archive operation ${task.endpoint}`);
      const body = await operation({ actor: { userName: task.userName, userId: task.userId, transport: 'internal' }, scratch,
        signal: controller.signal }, task.request);
      result = { status: 200, body };
    } catch (err) {
      if (err instanceof Cancelled || controller.signal.aborted) {
        // Shutting down is not a cancel: the row stays leased to this (now dead) process and is taken back at start.
        if (!this.shuttingDown) await store.markCancelled(this.deps.db, task.id);
        this.deps.log.info({ task: task.id, task_id: task.taskId, shutting_down: this.shuttingDown }, 'archive task stopped');
        return { status: 400, body: { desc: 'the task was cancelled', error_type: 'Cancelled', error_traceback: null, cmd: null, exit_code: null, stderr: null } };
      }
      result = errorResult(err);
      if (result.status >= 500) this.deps.log.error({ err, task: task.id, endpoint: task.endpoint }, 'archive task error');
      else this.deps.log.info({ task: task.id, endpoint: task.endpoint, error: (err as Error).message }, 'archive task refused');
    } finally {
      this.running.delete(task.id);
      fs.rmSync(scratch, { recursive: true, force: true });
      metrics.archiveTaskDuration.observe({ endpoint: task.endpoint }, Number(process.hrtime.bigint() - started) / 1e9);
    }
    const finished = await store.finishTask(this.deps.db, task.id, result.status, result.body);
    if (!finished) return { status: 400, body: { desc: 'the task was cancelled', error_type: 'Cancelled', error_traceback: null, cmd: null, exit_code: null, stderr: null } };
    return result;
  }

  private async send(c: store.DueCallback): Promise<void> {
    const body = JSON.stringify({ ...(c.body as Record<string, unknown>), callback: { status: c.status, id: c.id } });
    let status: number | null = null; let error: string | null = null;
    try {
      const res = await fetch(c.url, { method: c.method, body, redirect: 'manual', signal: AbortSignal.timeout(CALLBACK_TIMEOUT_MS),
        headers: { 'content-type': 'application/json', 'user-agent': 'Cairn-Repour' } });
      status = res.status;
      await res.body?.cancel();
    } catch (err) {
      // The receiver's fault (unreachable, slow, reset): a failed send, retried on schedule.
      error = String((err as Error).message).slice(0, 300);
    }
    const ok = status !== null && status >= 200 && status < 300;
    if (!ok) metrics.archiveErrors.inc({ kind: 'callback' });
    await store.finishCallback(this.deps.db, c.id, ok ? { state: 'delivered' } : c.attempts >= MAX_CALLBACK_SENDS ? { state: 'failed' }
      : { state: 'pending', retryInMs: callbackDelayMs(c.attempts, this.deps.config.callbackRetryBaseMs) });
    this.deps.log.info({ callback: c.id, send: c.attempts, status, error }, ok ? 'archive callback sent' : 'archive callback failed');
  }
}
