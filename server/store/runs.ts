import { Db, instant, isUniqueViolation, lockedIds, now } from '../db';

export type RunState = 'queued' | 'running' | 'succeeded' | 'failed' | 'cancelled';
export type RunTrigger = 'push' | 'manual' | 'schedule' | 'upstream' | 'repo_created';
export type Stage = { name: string; state: RunState; started_at: string | null; finished_at: string | null };
export type AdjustResult = { tag: string | null; commit: string; tree: string; changed_files: string[] };
export type UpstreamRef = { repo: string; repo_id: number; release: string; build_date: string };
export type Run = {
  id: number; repoId: number; ref: string; commit: string; release: string; trigger: RunTrigger; state: RunState;
  reason: string | null; stages: Stage[]; adjust: AdjustResult | null; upstream: UpstreamRef | null; buildDate: string | null;
  attempt: number; cancelRequested: boolean; leaseOwner: string | null; leaseUntil: string | null; processGroup: number | null;
  createdAt: string; startedAt: string | null; finishedAt: string | null;
};
type RunRow = { id: number; repo_id: number; ref: string; commit: string; release: string; trigger: string; state: string;
  reason: string | null; stages: string; adjust: string | null; upstream: string | null; build_date: string | null; attempt: number;
  cancel_requested: boolean | number; lease_owner: string | null; lease_until: string | null; process_group: number | null; created_at: string;
  started_at: string | null; finished_at: string | null };
const parse = <T>(s: string | null): T | null => (s === null ? null : JSON.parse(s) as T);
const toRun = (r: RunRow): Run => ({ id: r.id, repoId: r.repo_id, ref: r.ref, commit: r.commit, release: r.release,
  trigger: r.trigger as RunTrigger, state: r.state as RunState, reason: r.reason, stages: JSON.parse(r.stages) as Stage[],
  adjust: parse(r.adjust), upstream: parse(r.upstream), buildDate: r.build_date, attempt: r.attempt,
  cancelRequested: Boolean(r.cancel_requested), leaseOwner: r.lease_owner, leaseUntil: r.lease_until, processGroup: r.process_group, createdAt: r.created_at,
  startedAt: r.started_at, finishedAt: r.finished_at });

export type NewRun = { repoId: number; ref: string; commit: string; release: string; trigger: RunTrigger; stages: string[];
  upstream?: UpstreamRef | null; attempt?: number };

const freshStages = (names: string[]): string => JSON.stringify(names.map((name) => ({ name, state: 'queued', started_at: null, finished_at: null })));

/**
 * Queues a run, or folds it into the run already queued for the same repo and release, which then builds
 * the newer commit: one pending run per release, at the latest snapshot (and none for the commit running
 * now, unless it is a retry). The partial unique index makes
 * that hold across replicas; a lost race is retried as a fold.
 */
export async function enqueueRun(db: Db, r: NewRun): Promise<{ run: Run; coalesced: boolean }> {
  for (let attempt = 0; ; attempt++) {
    // A trigger for the commit already being built (its push event read late, a manual click) adds nothing.
    const running = await db<RunRow>('runs').where({ repo_id: r.repoId, release: r.release, state: 'running', commit: r.commit }).first();
    if (running && r.attempt === undefined) return { run: toRun(running), coalesced: true };
    const pending = await db<RunRow>('runs').where({ repo_id: r.repoId, release: r.release, state: 'queued' }).first();
    if (pending) {
      // A retry of an older run adds nothing to a pending one, which already builds something newer.
      if (r.attempt !== undefined) return { run: toRun(pending), coalesced: true };
      // Only while it is still queued: claimed or cancelled meanwhile, the trigger makes a run of its own.
      const changed = await db('runs').where({ id: pending.id, state: 'queued' }).update({ ref: r.ref, commit: r.commit, trigger: r.trigger,
        upstream: r.upstream ? JSON.stringify(r.upstream) : pending.upstream, stages: freshStages(r.stages) });
      if (changed === 0) continue;
      return { run: (await findRun(db, pending.id))!, coalesced: true };
    }
    try {
      // A savepoint: on PostgreSQL a failed insert would otherwise abort the caller's whole transaction.
      const [row] = await db.transaction((sp) => sp('runs').insert({ repo_id: r.repoId, ref: r.ref, commit: r.commit, release: r.release, trigger: r.trigger,
        state: 'queued', stages: freshStages(r.stages), upstream: r.upstream ? JSON.stringify(r.upstream) : null,
        attempt: r.attempt ?? 1, cancel_requested: false, created_at: now() }).returning('*'));
      return { run: toRun(row as RunRow), coalesced: false };
    } catch (err) {
      if (!isUniqueViolation(err) || attempt >= 3) throw err;
    }
  }
}

export async function findRun(db: Db, id: number): Promise<Run | null> {
  const row = await db<RunRow>('runs').where('id', id).first();
  return row ? toRun(row) : null;
}

export async function listRuns(db: Db, repoId: number, afterId: number, limit: number, state?: string): Promise<Run[]> {
  const q = db<RunRow>('runs').where('repo_id', repoId).andWhere('id', '>', afterId).orderBy('id').limit(limit);
  if (state) q.andWhere('state', state);
  return (await q).map(toRun);
}

/**
 * Claims the oldest queued run whose release has nothing running: it becomes `running`, leased to `owner`.
 * PostgreSQL skips rows another replica is claiming; the unique index on running runs settles any race.
 */
export async function claimRun(db: Db, owner: string, leaseMs: number): Promise<Run | null> {
  const ids = await lockedIds(db, db('runs as q').select('q.id').where('q.state', 'queued')
    .whereNotExists(db('runs as r').select(db.raw('1')).whereRaw('r.repo_id = q.repo_id').andWhereRaw('r.release = q.release').andWhere('r.state', 'running'))
    .orderBy('q.id').limit(1));
  if (ids.length === 0) return null;
  try {
    const rows = await db('runs').whereIn('id', ids).andWhere('state', 'queued')
      .update({ state: 'running', lease_owner: owner, lease_until: instant(leaseMs), started_at: now() }).returning('*');
    return rows.length > 0 ? toRun(rows[0] as RunRow) : null;
  } catch (err) {
    if (isUniqueViolation(err)) return null;
    throw err;
  }
}

/** False when the run is no longer this owner's (another replica judged it orphaned, or it ended). */
export async function renewLease(db: Db, id: number, owner: string, leaseMs: number): Promise<boolean> {
  return (await db('runs').where({ id, state: 'running', lease_owner: owner }).update({ lease_until: instant(leaseMs) })) > 0;
}

export async function updateRun(db: Db, id: number, fields: Partial<{ stages: Stage[]; adjust: AdjustResult; buildDate: string; commit: string }>): Promise<void> {
  const row: Record<string, unknown> = {};
  if (fields.commit) row.commit = fields.commit;
  if (fields.stages) row.stages = JSON.stringify(fields.stages);
  if (fields.adjust) row.adjust = JSON.stringify(fields.adjust);
  if (fields.buildDate) row.build_date = fields.buildDate;
  await db('runs').where('id', id).update(row);
}

/** Ends a run (only one that is still queued or running): true when this call ended it. */
export async function finishRun(db: Db, id: number, state: 'succeeded' | 'failed' | 'cancelled', reason: string | null, stages?: Stage[]): Promise<boolean> {
  const n = await db('runs').where('id', id).whereIn('state', ['queued', 'running'])
    .update({ state, reason, finished_at: now(), lease_owner: null, lease_until: null, process_group: null, ...(stages ? { stages: JSON.stringify(stages) } : {}) });
  return n > 0;
}

export async function setProcessGroup(db: Db, id: number, pgid: number | null): Promise<void> {
  await db('runs').where('id', id).update({ process_group: pgid });
}

export async function requestCancel(db: Db, id: number): Promise<void> {
  await db('runs').where('id', id).update({ cancel_requested: true });
}

export async function isCancelRequested(db: Db, id: number): Promise<boolean> {
  const row = await db('runs').where('id', id).select('cancel_requested').first();
  return Boolean(row?.cancel_requested);
}

/** Running runs whose executor is gone: leases run out, or held by owners starting with `ownerPrefix` for the caller to judge. */
export async function orphanedRuns(db: Db, ownerPrefix: string): Promise<Run[]> {
  const rows = await db<RunRow>('runs').where('state', 'running')
    .andWhere((w) => w.where('lease_until', '<', instant()).orWhere('lease_owner', 'like', `${ownerPrefix}%`));
  return rows.map(toRun);
}

export type Build = { id: number; runId: number; repoId: number; release: string; buildDate: string; result: 'success' | 'fail';
  createdAt: string; removedAt: string | null };
type BuildRow = { id: number; run_id: number; repo_id: number; release: string; build_date: string; result: string; created_at: string; removed_at: string | null };
const toBuild = (r: BuildRow): Build => ({ id: r.id, runId: r.run_id, repoId: r.repo_id, release: r.release, buildDate: r.build_date,
  result: r.result as Build['result'], createdAt: r.created_at, removedAt: r.removed_at });

export async function insertBuild(db: Db, b: Omit<Build, 'id' | 'removedAt' | 'createdAt'>): Promise<void> {
  await db('builds').insert({ run_id: b.runId, repo_id: b.repoId, release: b.release, build_date: b.buildDate, result: b.result, created_at: now() });
}

export async function liveBuilds(db: Db): Promise<Build[]> {
  return (await db<BuildRow>('builds').whereNull('removed_at').orderBy('id')).map(toBuild);
}

export async function markBuildRemoved(db: Db, id: number): Promise<void> {
  await db('builds').where('id', id).update({ removed_at: now() });
}

export async function buildDatesOf(db: Db, repoId: number, release: string): Promise<string[]> {
  return (await db('builds').where({ repo_id: repoId, release }).select('build_date')).map((r: { build_date: string }) => r.build_date);
}
