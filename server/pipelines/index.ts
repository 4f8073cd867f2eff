// Pipelines: definitions, the triggers that turn events into runs, and the workers that run them.
import { PipelineTriggers } from './triggers';
import { RunWorker, PipelineDeps } from './worker';
import { enforceRetention } from './retention';

export { definitionSchema, definitionProblem, releaseOf, refOfRelease, MAX_COMMAND_BYTES } from './definition';
export type { Definition } from './definition';
export { queueRun, cancelQueuedRun } from './queue';
export { runLogPath } from './worker';
export { chooseSandbox } from './sandbox';
export type { PipelineDeps } from './worker';

const CONSUME_MS = 100;
const SCHEDULE_MS = 1000;

/** The running pipeline machinery of one process: what main starts and stops, and what the API pokes. */
export class Pipelines {
  readonly worker: RunWorker;
  private readonly triggers: PipelineTriggers;
  private readonly timers: NodeJS.Timeout[] = [];
  private stopped = false;
  private busy = new Set<Promise<unknown>>();
  private consumeNow: () => void = () => undefined;

  constructor(private readonly d: PipelineDeps & { retentionIntervalMs: number; composed?: () => void }, private readonly isAlive: (pid: number) => boolean) {
    this.worker = new RunWorker(d);
    this.triggers = new PipelineTriggers(d.db, d.gitEnv, d.repoDir, d.canRead, () => this.worker.wake(), d.log.child({ part: 'triggers' }),
      d.submitCompose, () => d.composed?.());
  }

  async start(): Promise<void> {
    const recovered = await this.worker.recoverOrphans(this.isAlive, true);
    if (recovered > 0) this.d.log.warn({ recovered }, 'runs left executing by a stopped server were marked failed and queued again');
    this.worker.start();
    this.consumeNow = this.every(CONSUME_MS, async () => { while (!this.stopped && (await this.triggers.consume())); }, 'trigger');
    this.every(SCHEDULE_MS, () => this.triggers.fireSchedules(), 'schedule');
    this.every(10_000, () => this.worker.recoverOrphans(this.isAlive, false), 'orphan sweep');
    this.every(this.d.retentionIntervalMs, () => enforceRetention(this.d.db, this.d.artifactsDir, this.d.log), 'retention');
  }

  /** New events were just written here (an accepted push): read them without waiting for the next poll. */
  nudge(): void { this.consumeNow(); }

  /** A run was just queued here (a manual run): start it without waiting for the next poll. */
  wake(): void { this.worker.wake(); }

  cancel(runId: number): void { this.worker.cancelLocal(runId); }

  async stop(): Promise<void> {
    this.stopped = true;
    for (const t of this.timers) clearTimeout(t);
    await Promise.all(this.busy);
    await this.worker.stop();
  }

  /**
   * A periodic job that never overlaps itself and never dies of one failure. The function it returns runs
   * the job now (or right after the current run), then the period starts again.
   */
  private every(ms: number, job: () => Promise<unknown>, what: string): () => void {
    const slot = this.timers.length;
    let running = false; let again = false;
    const loop = () => {
      if (this.stopped) return;
      clearTimeout(this.timers[slot]);
      running = true;
      const p = job().catch((err) => this.d.log.error({ err }, `${what} failed`)).finally(() => {
        this.busy.delete(p);
        running = false;
        if (this.stopped) return;
        if (again) { again = false; loop(); } else this.timers[slot] = setTimeout(loop, ms);
      });
      this.busy.add(p);
    };
    this.timers.push(setTimeout(loop, 0));
    return () => { if (running) again = true; else loop(); };
  }
}
