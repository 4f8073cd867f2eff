import { Db } from '../db';

export type StoredPipeline = { repoId: number; definition: unknown; updatedAt: string; updatedBy: string };
type PipelineRow = { repo_id: number; definition: string; updated_at: string; updated_by: string };
const toPipeline = (r: PipelineRow): StoredPipeline =>
  ({ repoId: r.repo_id, definition: JSON.parse(r.definition), updatedAt: r.updated_at, updatedBy: r.updated_by });

export type UpstreamLink = { upstreamRepoId: number; release: string; ref: string | null };

/** Saves a repo's definition and the upstream links it declares, replacing the previous ones. */
export async function savePipeline(db: Db, repoId: number, definition: unknown, upstreams: UpstreamLink[], at: string, by: string): Promise<void> {
  const row = { definition: JSON.stringify(definition), updated_at: at, updated_by: by };
  const updated = await db('pipelines').where('repo_id', repoId).update(row);
  if (updated === 0) await db('pipelines').insert({ repo_id: repoId, ...row });
  await db('pipeline_upstreams').where('repo_id', repoId).delete();
  if (upstreams.length > 0) {
    await db('pipeline_upstreams').insert(upstreams.map((u) => ({ repo_id: repoId, upstream_repo_id: u.upstreamRepoId, release: u.release, ref: u.ref })));
  }
}

export async function findPipeline(db: Db, repoId: number): Promise<StoredPipeline | null> {
  const row = await db<PipelineRow>('pipelines').where('repo_id', repoId).first();
  return row ? toPipeline(row) : null;
}

export async function allPipelines(db: Db): Promise<StoredPipeline[]> {
  return (await db<PipelineRow>('pipelines').select('*')).map(toPipeline);
}

/** The pipelines a publish of (repo, release) triggers, with the ref each builds. */
export async function downstreamOf(db: Db, upstreamRepoId: number, release: string): Promise<{ repoId: number; ref: string | null }[]> {
  return (await db('pipeline_upstreams').where({ upstream_repo_id: upstreamRepoId, release }).select('repo_id', 'ref'))
    .map((r: { repo_id: number; ref: string | null }) => ({ repoId: r.repo_id, ref: r.ref }));
}

/** Claims one cron firing: true for exactly one caller, whatever the number of replicas. */
export async function claimScheduleFire(db: Db, repoId: number, schedule: string, dueAt: string): Promise<boolean> {
  const inserted = await db('schedule_fires').insert({ repo_id: repoId, schedule, due_at: dueAt }).onConflict(['repo_id', 'schedule', 'due_at']).ignore()
    .returning('repo_id');
  return (inserted as unknown[]).length > 0;
}

/** An outbox consumer's cursor, locked for the caller's transaction on PostgreSQL (one consumer at a time). */
export async function lockCursor(db: Db, name: string, startAt: () => Promise<number>): Promise<number> {
  const locked = async () => {
    const q = db('consumer_cursors').where('name', name).first();
    if (db.client.config.client === 'pg') q.forUpdate();
    return q;
  };
  const row = await locked();
  if (row) return Number(row.last_event_id);
  await db('consumer_cursors').insert({ name, last_event_id: await startAt() }).onConflict('name').ignore();
  // Whoever inserted first, everyone now takes the row's lock in turn.
  return Number((await locked()).last_event_id);
}

export async function advanceCursor(db: Db, name: string, lastEventId: number): Promise<void> {
  await db('consumer_cursors').where('name', name).update({ last_event_id: lastEventId });
}
