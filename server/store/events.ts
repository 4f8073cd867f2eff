import { Db } from '../db';

export type StoredEvent = { id: number; repoId: number; seq: number; type: string; data: Record<string, unknown>; at: string };
type EventRow = { id: number; repo_id: number; seq: number; type: string; data: string; at: string };
const toEvent = (r: EventRow): StoredEvent =>
  ({ id: r.id, repoId: r.repo_id, seq: r.seq, type: r.type, data: JSON.parse(r.data) as Record<string, unknown>, at: r.at });

const EVENTS_LOCK = 0x6361697276; // "cairv": any constant that no other advisory lock in this database uses

/** Appends to a repository's events; call inside the transaction that makes the change the event reports. */
export async function insertEvent(db: Db, repoId: number, type: string, data: Record<string, unknown>, at: string): Promise<StoredEvent> {
  // PostgreSQL: one event-writing transaction at a time from here to its commit. Ids are then committed in
  // order (a consumer that read id N never later finds a smaller one appear) and `seq` cannot be taken twice.
  // SQLite has one writer already.
  if (db.client.config.client === 'pg') await db.raw('SELECT pg_advisory_xact_lock(?)', [EVENTS_LOCK]);
  const last = await db<EventRow>('events').where('repo_id', repoId).max<{ seq: number | null }>('seq as seq').first();
  const seq = (last?.seq ?? 0) + 1;
  const [row] = await db('events').insert({ repo_id: repoId, seq, type, data: JSON.stringify(data), at }).returning('id');
  const id = typeof row === 'object' ? (row as { id: number }).id : (row as number);
  return { id, repoId, seq, type, data, at };
}

/** Events after a cursor, oldest first; `repoIds` null means every repository (an admin). */
export async function listEvents(db: Db, repoIds: number[] | null, afterId: number, limit: number): Promise<StoredEvent[]> {
  const q = db<EventRow>('events').where('id', '>', afterId).orderBy('id').limit(limit);
  if (repoIds !== null) q.whereIn('repo_id', repoIds.length > 0 ? repoIds : [-1]);
  return (await q).map(toEvent);
}

/** Events of one repository, or of every repository of a tenant, after a cursor, oldest first. */
export async function eventsInScope(db: Db, scope: { repoId?: number; tenantId?: number }, afterId: number, limit: number): Promise<StoredEvent[]> {
  const q = db<EventRow>('events').where('id', '>', afterId).orderBy('id').limit(limit);
  if (scope.repoId !== undefined) q.andWhere('repo_id', scope.repoId);
  else q.whereIn('repo_id', db('repos').select('id').where('tenant_id', scope.tenantId!));
  return (await q).map(toEvent);
}

export async function findEvent(db: Db, id: number): Promise<StoredEvent | null> {
  const row = await db<EventRow>('events').where('id', id).first();
  return row ? toEvent(row) : null;
}
