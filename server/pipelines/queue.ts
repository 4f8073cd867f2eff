import { Db, inTransaction, Knex, now } from '../db';
import { appendEvent } from '../events';
import * as store from '../store';
import type { Run, RunTrigger, UpstreamRef } from '../store';
import { Definition, releaseOf, stagesOf } from './definition';

/** What a `run.state_changed` event says about a run. */
export const runEventData = (run: Run): Record<string, unknown> => ({ run_id: run.id, state: run.state, ref: run.ref, commit: run.commit,
  release: run.release, trigger: run.trigger, attempt: run.attempt, reason: run.reason });

export type RunRequest = { ref: string; commit: string; trigger: RunTrigger; upstream?: UpstreamRef | null; attempt?: number };

/**
 * Queues a run in the caller's transaction, or folds it into the one already waiting for that release.
 * A new run's `queued` event is written with it; a fold changes no state, so it has none.
 */
export async function queueRun(trx: Db, repoId: number, def: Definition, r: RunRequest): Promise<{ run: Run; coalesced: boolean }> {
  const result = await store.enqueueRun(trx, { repoId, ref: r.ref, commit: r.commit, release: releaseOf(r.ref), trigger: r.trigger,
    stages: stagesOf(def), upstream: r.upstream ?? null, attempt: r.attempt });
  if (!result.coalesced) await appendEvent(trx, repoId, 'run.state_changed', runEventData(result.run), now());
  return result;
}

/** A run still queued ends cancelled at once, with its event; one already running is left to its worker. */
export async function cancelQueuedRun(db: Knex, runId: number): Promise<void> {
  await inTransaction(db, async (trx) => {
    const current = await store.findRun(trx, runId);
    if (current?.state !== 'queued') return;
    if (!(await store.finishRun(trx, runId, 'cancelled', 'cancelled before it started',
      current.stages.map((st) => ({ ...st, state: 'cancelled' as const }))))) return;
    await appendEvent(trx, current.repoId, 'run.state_changed', runEventData((await store.findRun(trx, runId))!), now());
  });
}
