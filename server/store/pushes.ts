import { Db } from '../db';

const BATCH = 500;

export type PushState = 'pending' | 'accepted' | 'void';
export type PushUpdate = { ref: string; oldId: string; newId: string; applied: boolean | null };
export type Push = { id: number; repoId: number; state: PushState; userName: string; userId: number | null;
  transport: string; at: string; host: string; pid: number | null; seq: number | null;
  prevHash: string | null; hash: string | null; settledAt: string | null; updates: PushUpdate[] };

type PushRow = { id: number; repo_id: number; state: PushState; user_name: string; user_id: number | null;
  transport: string; at: string; host: string; pid: number | null; seq: number | null; prev_hash: string | null;
  hash: string | null; settled_at: string | null };
type UpdateRow = { id: number; push_id: number; ref: string; old_id: string; new_id: string; applied: boolean | number | null };

async function withUpdates(db: Db, rows: PushRow[]): Promise<Push[]> {
  if (rows.length === 0) return [];
  const updates = await db<UpdateRow>('push_updates').whereIn('push_id', rows.map((r) => r.id)).orderBy('id');
  const byPush = new Map<number, PushUpdate[]>();
  for (const u of updates) {
    const list = byPush.get(u.push_id) ?? [];
    list.push({ ref: u.ref, oldId: u.old_id, newId: u.new_id, applied: u.applied === null ? null : Boolean(u.applied) });
    byPush.set(u.push_id, list);
  }
  return rows.map((r) => ({ id: r.id, repoId: r.repo_id, state: r.state, userName: r.user_name, userId: r.user_id,
    transport: r.transport, at: r.at, host: r.host, pid: r.pid, seq: r.seq, prevHash: r.prev_hash, hash: r.hash,
    settledAt: r.settled_at, updates: byPush.get(r.id) ?? [] }));
}

export type NewPush = { repoId: number; userName: string; userId: number | null; transport: string; at: string;
  host: string; pid: number | null; updates: { ref: string; oldId: string; newId: string }[] };

export async function insertPendingPush(db: Db, p: NewPush): Promise<number> {
  const [row] = await db('pushes').insert({ repo_id: p.repoId, state: 'pending', user_name: p.userName,
    user_id: p.userId, transport: p.transport, at: p.at, host: p.host, pid: p.pid }).returning('id');
  const id = typeof row === 'object' ? (row as { id: number }).id : (row as number);
  // Batches keep a push of thousands of tags under both engines' limits on bound parameters.
  for (let i = 0; i < p.updates.length; i += BATCH) {
    await db('push_updates').insert(p.updates.slice(i, i + BATCH)
      .map((u) => ({ push_id: id, ref: u.ref, old_id: u.oldId, new_id: u.newId, applied: null })));
  }
  return id;
}

export async function findPush(db: Db, id: number): Promise<Push | null> {
  const row = await db<PushRow>('pushes').where('id', id).first();
  return row ? (await withUpdates(db, [row]))[0] : null;
}

export async function pendingPushes(db: Db, where: { host?: string; repoId?: number }): Promise<Push[]> {
  const q = db<PushRow>('pushes').where({ state: 'pending' }).orderBy('id');
  if (where.host !== undefined) q.andWhere('host', where.host);
  if (where.repoId !== undefined) q.andWhere('repo_id', where.repoId);
  return withUpdates(db, await q);
}

/** The end of a repo's ledger, or null for a repo with no accepted push yet. */
export async function ledgerHead(db: Db, repoId: number): Promise<{ seq: number; hash: string } | null> {
  const row = await db<PushRow>('pushes').where({ repo_id: repoId, state: 'accepted' }).orderBy('seq', 'desc').first();
  return row ? { seq: row.seq as number, hash: row.hash as string } : null;
}

export async function markAccepted(db: Db, id: number, ledger: { seq: number; prevHash: string; hash: string; settledAt: string },
  appliedRefs: ReadonlySet<string>, allApplied: boolean): Promise<void> {
  await db('pushes').where({ id, state: 'pending' }).update({ state: 'accepted', seq: ledger.seq, prev_hash: ledger.prevHash,
    hash: ledger.hash, settled_at: ledger.settledAt });
  // The usual case, every update landed, is one statement.
  if (allApplied) await db('push_updates').where('push_id', id).update({ applied: true });
  else await setApplied(db, id, appliedRefs);
}

export async function markVoid(db: Db, id: number, settledAt: string): Promise<void> {
  await db('pushes').where({ id, state: 'pending' }).update({ state: 'void', settled_at: settledAt });
  await setApplied(db, id, new Set());
}

async function setApplied(db: Db, pushId: number, appliedRefs: ReadonlySet<string>): Promise<void> {
  await db('push_updates').where('push_id', pushId).update({ applied: false });
  const refs = [...appliedRefs];
  for (let i = 0; i < refs.length; i += BATCH) {
    await db('push_updates').where('push_id', pushId).whereIn('ref', refs.slice(i, i + BATCH)).update({ applied: true });
  }
}

/** A repo's ledger, oldest first, keyset-paged by seq. */
export async function listAcceptedPushes(db: Db, repoId: number, limit: number, afterSeq: number): Promise<Push[]> {
  return withUpdates(db, await db<PushRow>('pushes').where({ repo_id: repoId, state: 'accepted' })
    .andWhere('seq', '>', afterSeq).orderBy('seq').limit(limit));
}
