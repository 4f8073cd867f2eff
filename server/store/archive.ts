import { Db, instant, Knex, lockedIds } from '../db';

// The archive API's tables: the tree → tag dedup index, and the task queue with its callbacks.


export type ArchivedTree = { repoId: number; tree: string; tag: string; commit: string; branch: string };
type TreeRow = { repo_id: number; tree: string; tag: string; commit: string; branch: string; created_at: string };
const toTree = (r: TreeRow): ArchivedTree => ({ repoId: r.repo_id, tree: r.tree, tag: r.tag, commit: r.commit, branch: r.branch });

/** The first tag given to this tree in this repository: one indexed lookup, whatever the number of tags. */
export async function findArchivedTree(db: Db, repoId: number, tree: string): Promise<ArchivedTree | null> {
  const row = await db<TreeRow>('archive_trees').where({ repo_id: repoId, tree }).first();
  return row ? toTree(row) : null;
}

/** Records a tree's tag unless one is there already; answers with whichever was first. */
export async function recordArchivedTree(db: Db, t: ArchivedTree): Promise<ArchivedTree> {
  await db('archive_trees').insert({ repo_id: t.repoId, tree: t.tree, tag: t.tag, commit: t.commit, branch: t.branch,
    created_at: instant() }).onConflict(['repo_id', 'tree']).ignore();
  return (await findArchivedTree(db, t.repoId, t.tree))!;
}

export type TaskState = 'queued' | 'running' | 'done' | 'cancelled' | 'abandoned';
export type ArchiveTask = { id: string; taskId: string | null; endpoint: string; request: Record<string, unknown>;
  userId: number; userName: string; state: TaskState; cancelRequested: boolean; callback: TaskCallback | null;
  callbackAttempts: number; resultStatus: number | null; resultBody: unknown };
type TaskRow = { id: string; task_id: string | null; endpoint: string; request: string; user_id: number; user_name: string;
  state: TaskState; cancel_requested: boolean | number; lease_owner: string | null; lease_until: string | null;
  result_status: number | null; result_body: string | null; callback_url: string | null; callback_method: string | null;
  failure_callback_url: string | null; failure_callback_method: string | null;
  callback_state: string; callback_attempts: number; callback_next_at: string | null; created_at: string; finished_at: string | null };
const toTask = (r: TaskRow): ArchiveTask => ({ id: r.id, taskId: r.task_id, endpoint: r.endpoint, request: JSON.parse(r.request),
  userId: r.user_id, userName: r.user_name, state: r.state, cancelRequested: Boolean(r.cancel_requested),
  callback: r.callback_url ? { url: r.callback_url, method: r.callback_method ?? 'POST',
    failureUrl: r.failure_callback_url ?? r.callback_url, failureMethod: r.failure_callback_method ?? r.callback_method ?? 'POST' } : null,
  callbackAttempts: r.callback_attempts, resultStatus: r.result_status,
  resultBody: r.result_body === null ? null : JSON.parse(r.result_body) });

export type NewTask = { id: string; taskId: string | null; endpoint: string; request: Record<string, unknown>; userId: number;
  userName: string; callback: TaskCallback | null };
/** Where the result is sent: `url` for a 200, `failureUrl` for anything else. */
export type TaskCallback = { url: string; method: string; failureUrl: string; failureMethod: string };

/**
 * A callback task waits in the queue; a synchronous one is running at once, leased to the process that
 * answers the request (so a cancel from any replica reaches it through its flag).
 */
export async function insertTask(db: Db, t: NewTask, runningAs: { owner: string; leaseMs: number } | null): Promise<void> {
  await db('archive_tasks').insert({ id: t.id, task_id: t.taskId, endpoint: t.endpoint, request: JSON.stringify(t.request),
    user_id: t.userId, user_name: t.userName, state: runningAs ? 'running' : 'queued', cancel_requested: false,
    lease_owner: runningAs?.owner ?? null, lease_until: runningAs ? instant(runningAs.leaseMs) : null,
    callback_url: t.callback?.url ?? null, callback_method: t.callback?.method ?? null,
    failure_callback_url: t.callback?.failureUrl ?? null, failure_callback_method: t.callback?.failureMethod ?? null, callback_state: 'none',
    callback_attempts: 0, created_at: instant() });
}

/**
 * Claims queued callback tasks, and callback tasks whose runner's lease ran out (it died). PostgreSQL skips
 * rows another replica is claiming (FOR UPDATE SKIP LOCKED); SQLite has one writer, so one UPDATE is exclusive.
 */
export async function claimTasks(db: Knex, limit: number, owner: string, leaseMs: number): Promise<ArchiveTask[]> {
  if (limit <= 0) return [];
  const at = instant();
  // Two steps in one transaction: see lockedIds (one UPDATE … IN (SELECT … SKIP LOCKED) can claim more than `limit`).
  return db.transaction(async (trx) => {
    const ids = await lockedIds<string>(trx, trx('archive_tasks').select('id')
      .where((w) => w.where('state', 'queued').andWhere('cancel_requested', false))
      .orWhere((w) => w.where('state', 'running').andWhere('lease_until', '<', at).whereNotNull('callback_url').andWhere('cancel_requested', false))
      .orderBy('created_at').limit(limit));
    if (ids.length === 0) return [];
    const rows = await trx('archive_tasks').whereIn('id', ids)
      .update({ state: 'running', lease_owner: owner, lease_until: instant(leaseMs) }).returning('*');
    return (rows as TaskRow[]).map(toTask);
  });
}

/** Keeps this process's tasks leased; answers which of them someone asked to cancel. */
export async function heartbeat(db: Db, ids: string[], owner: string, leaseMs: number): Promise<string[]> {
  if (ids.length === 0) return [];
  await db('archive_tasks').whereIn('id', ids).andWhere('lease_owner', owner).update({ lease_until: instant(leaseMs) });
  return (await db('archive_tasks').whereIn('id', ids).andWhere('cancel_requested', true).select('id')).map((r: { id: string }) => r.id);
}

/**
 * Stores the result; a callback task's callback becomes due at once. A task someone cancelled in the
 * meantime stays cancelled and sends nothing: returns false then.
 */
export async function finishTask(db: Db, id: string, status: number, body: unknown): Promise<boolean> {
  const at = instant();
  const n = await db('archive_tasks').where({ id, cancel_requested: false }).update({ state: 'done', result_status: status,
    result_body: JSON.stringify(body), finished_at: at, lease_owner: null, lease_until: null,
    callback_state: db.raw("CASE WHEN callback_url IS NULL THEN 'none' ELSE 'pending' END"), callback_next_at: at });
  if (n === 0) await markCancelled(db, id);
  return n > 0;
}

export async function markCancelled(db: Db, id: string): Promise<void> {
  await db('archive_tasks').where('id', id).update({ state: 'cancelled', finished_at: instant(), lease_owner: null, lease_until: null,
    callback_state: 'none' });
}

/**
 * Flags every unfinished task of this taskId; queued ones are cancelled outright, running ones by their
 * runner, which polls the flag. Returns how many there were.
 */
export async function requestTaskCancel(db: Db, taskId: string): Promise<number> {
  const n = await db('archive_tasks').where('task_id', taskId).whereIn('state', ['queued', 'running'])
    .update({ cancel_requested: true });
  await db('archive_tasks').where({ task_id: taskId, state: 'queued' }).update({ state: 'cancelled', finished_at: instant() });
  return n;
}

export type DueCallback = { id: string; url: string; method: string; attempts: number; status: number; body: unknown };

/** Claims callbacks whose time has come, and ones whose sender's lease ran out. */
export async function claimDueCallbacks(db: Knex, limit: number, owner: string, leaseMs: number): Promise<DueCallback[]> {
  const at = instant();
  const rows = await db.transaction(async (trx) => {
    const ids = await lockedIds<string>(trx, trx('archive_tasks').select('id')
      .where((w) => w.where('callback_state', 'pending').andWhere('callback_next_at', '<=', at))
      .orWhere((w) => w.where('callback_state', 'sending').andWhere('lease_until', '<', at))
      .orderBy('callback_next_at').limit(limit));
    if (ids.length === 0) return [];
    return trx('archive_tasks').whereIn('id', ids).update({ callback_state: 'sending', lease_owner: owner,
      lease_until: instant(leaseMs), callback_attempts: trx.raw('callback_attempts + 1') }).returning('*');
  });
  return (rows as TaskRow[]).map((r) => {
    const status = r.result_status ?? 500;
    const ok = status === 200;
    return { id: r.id, url: ok ? r.callback_url! : r.failure_callback_url ?? r.callback_url!,
      method: (ok ? r.callback_method : r.failure_callback_method ?? r.callback_method) ?? 'POST',
      attempts: r.callback_attempts, status, body: r.result_body === null ? {} : JSON.parse(r.result_body) };
  });
}

export async function finishCallback(db: Db, id: string, outcome: { state: 'delivered' | 'failed' | 'pending'; retryInMs?: number }): Promise<void> {
  await db('archive_tasks').where('id', id).update({ callback_state: outcome.state, lease_owner: null, lease_until: null,
    ...(outcome.retryInMs !== undefined ? { callback_next_at: instant(outcome.retryInMs) } : {}) });
}

/** Synchronous tasks whose runner's lease ran out (another replica died): their caller is gone. */
export async function abandonExpiredSyncTasks(db: Db): Promise<void> {
  await db('archive_tasks').where('state', 'running').whereNull('callback_url').andWhere('lease_until', '<', instant())
    .update({ state: 'abandoned', finished_at: instant(), lease_owner: null, lease_until: null });
}

/** Work held by owners whose name starts with `prefix` (this host's processes), for the caller to judge. */
export async function leasedArchiveWork(db: Db, ownerPrefix: string): Promise<{ id: string; owner: string; kind: 'task' | 'callback';
  hasCallback: boolean }[]> {
  const rows = await db<TaskRow>('archive_tasks').where('lease_owner', 'like', `${ownerPrefix}%`)
    .andWhere((w) => w.where('state', 'running').orWhere('callback_state', 'sending'));
  return rows.map((r) => ({ id: r.id, owner: r.lease_owner!, kind: r.state === 'running' ? 'task' as const : 'callback' as const,
    hasCallback: r.callback_url !== null }));
}

/** A dead runner's task: a callback task is queued again (its work is idempotent); a synchronous one is abandoned. */
export async function releaseDeadWork(db: Db, id: string, kind: 'task' | 'callback', hasCallback: boolean): Promise<void> {
  if (kind === 'callback') { await finishCallback(db, id, { state: 'pending', retryInMs: 0 }); return; }
  // One somebody cancelled stays cancelled: queued again, no worker would ever claim it.
  const row = await db('archive_tasks').where('id', id).first('cancel_requested');
  if (row?.cancel_requested) { await markCancelled(db, id); return; }
  await db('archive_tasks').where('id', id).update({ state: hasCallback ? 'queued' : 'abandoned', lease_owner: null, lease_until: null,
    ...(hasCallback ? {} : { finished_at: instant() }) });
}
