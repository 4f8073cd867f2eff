import { Db, instant, lockedIds, now } from '../db';

export type ComposeState = 'wait' | 'generating' | 'done' | 'failed' | 'removed';
export type Pin =
  | { type: 'git'; repo: string; ref: string; commit: string; tree: string }
  | { type: 'build'; repo: string; release: string; build_date: string };
export type Compose = {
  id: number; owner: string; sourceType: string; source: string; state: ComposeState; stateReason: string | null;
  flags: string[]; label: string | null; secondsToLive: number; pins: Pin[] | null; pinsKey: string | null; reusedId: number | null;
  removedBy: string | null; timeSubmitted: string; timeStarted: string | null; timeDone: string | null; timeRemoved: string | null;
  timeToExpire: string;
};
type ComposeRow = { id: number; owner: string; source_type: string; source: string; state: string; state_reason: string | null;
  flags: string; label: string | null; seconds_to_live: number; pins: string | null; pins_key: string | null; reused_id: number | null;
  removed_by: string | null; time_submitted: string; time_started: string | null; time_done: string | null; time_removed: string | null;
  time_to_expire: string };
const toCompose = (r: ComposeRow): Compose => ({ id: r.id, owner: r.owner, sourceType: r.source_type, source: r.source,
  state: r.state as ComposeState, stateReason: r.state_reason, flags: JSON.parse(r.flags) as string[], label: r.label,
  secondsToLive: r.seconds_to_live, pins: r.pins ? JSON.parse(r.pins) as Pin[] : null, pinsKey: r.pins_key, reusedId: r.reused_id,
  removedBy: r.removed_by, timeSubmitted: r.time_submitted, timeStarted: r.time_started, timeDone: r.time_done,
  timeRemoved: r.time_removed, timeToExpire: r.time_to_expire });

export type NewCompose = { owner: string; sourceType: string; source: string; flags: string[]; label: string | null;
  secondsToLive: number; pins?: Pin[] | null; repoIds: number[] };

/** Seconds from now, in the API's time format. */
export const secondsFromNow = (s: number): string => new Date(Date.now() + s * 1000).toISOString().replace(/\.\d{3}Z$/, 'Z');

export async function insertCompose(db: Db, c: NewCompose): Promise<Compose> {
  const [row] = await db('composes').insert({ owner: c.owner, source_type: c.sourceType, source: c.source, state: 'wait',
    flags: JSON.stringify(c.flags), label: c.label, seconds_to_live: c.secondsToLive, pins: c.pins ? JSON.stringify(c.pins) : null,
    time_submitted: now(), time_to_expire: secondsFromNow(c.secondsToLive) }).returning('*');
  const compose = toCompose(row as ComposeRow);
  await setComposeRepos(db, compose.id, c.repoIds);
  return compose;
}

export async function setComposeRepos(db: Db, composeId: number, repoIds: number[]): Promise<void> {
  await db('compose_repos').where('compose_id', composeId).delete();
  const unique = [...new Set(repoIds)];
  if (unique.length > 0) await db('compose_repos').insert(unique.map((repo_id) => ({ compose_id: composeId, repo_id })));
}

export async function composeRepoIds(db: Db, composeId: number): Promise<number[]> {
  return (await db('compose_repos').where('compose_id', composeId).select('repo_id')).map((r: { repo_id: number }) => r.repo_id);
}

export async function findCompose(db: Db, id: number): Promise<Compose | null> {
  const row = await db<ComposeRow>('composes').where('id', id).first();
  return row ? toCompose(row) : null;
}

export type ComposeQuery = { filters: Partial<Record<'owner' | 'source_type' | 'source' | 'state' | 'label', string>>;
  orderBy: string; descending: boolean; offset: number; limit: number;
  /** null: everything (an admin); else composes drawing on some repositories, all of them among these (or on none, owned by `owner`). */
  visibleTo: { owner: string; repoIds: number[] } | null };

export async function queryComposes(db: Db, q: ComposeQuery): Promise<{ items: Compose[]; total: number }> {
  const base = () => {
    const b = db('composes as c');
    for (const [k, v] of Object.entries(q.filters)) if (v !== undefined) b.where(`c.${k}`, v);
    if (q.visibleTo) {
      const { owner, repoIds } = q.visibleTo;
      b.where((w) => w.where((o) => o.where('c.owner', owner)
        .whereNotExists(db('compose_repos as cr1').select(db.raw('1')).whereRaw('cr1.compose_id = c.id'))).orWhere((v) => v
        .whereExists(db('compose_repos as cr0').select(db.raw('1')).whereRaw('cr0.compose_id = c.id'))
        .whereNotExists(db('compose_repos as cr').select(db.raw('1')).whereRaw('cr.compose_id = c.id').whereNotIn('cr.repo_id', repoIds.length > 0 ? repoIds : [-1]))));
    }
    return b;
  };
  const total = Number((await base().count<{ n: number | string }[]>('c.id as n'))[0].n);
  // Times not set yet (NULL) last in either direction, as one rule for both engines.
  const rows = await base().select('c.*').orderByRaw('(?? IS NULL)', [`c.${q.orderBy}`]).orderBy(`c.${q.orderBy}`, q.descending ? 'desc' : 'asc').orderBy('c.id', q.descending ? 'desc' : 'asc')
    .offset(q.offset).limit(q.limit);
  return { items: (rows as ComposeRow[]).map(toCompose), total };
}

/** Claims the oldest waiting compose for generation, leased to `owner` (SKIP LOCKED on PostgreSQL). */
export async function claimCompose(db: Db, owner: string, leaseMs: number): Promise<Compose | null> {
  const ids = await lockedIds(db, db('composes').select('id').where('state', 'wait').orderBy('id').limit(1));
  if (ids.length === 0) return null;
  const rows = await db('composes').whereIn('id', ids).andWhere('state', 'wait')
    .update({ state: 'generating', state_reason: 'Compose thread started', time_started: now(), lease_owner: owner, lease_until: instant(leaseMs) })
    .returning('*');
  return rows.length > 0 ? toCompose(rows[0] as ComposeRow) : null;
}

export async function updateCompose(db: Db, id: number, fields: Partial<{ state: ComposeState; stateReason: string; pins: Pin[]; pinsKey: string;
  reusedId: number | null; timeDone: string; timeRemoved: string; timeToExpire: string; removedBy: string; leaseUntil: string | null }>): Promise<void> {
  const map: Record<string, string> = { state: 'state', stateReason: 'state_reason', pinsKey: 'pins_key', reusedId: 'reused_id', timeDone: 'time_done',
    timeRemoved: 'time_removed', timeToExpire: 'time_to_expire', removedBy: 'removed_by', leaseUntil: 'lease_until' };
  const row: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(fields)) {
    if (k === 'pins') row.pins = JSON.stringify(v);
    else row[map[k]] = v;
  }
  if (fields.state && fields.state !== 'generating') { row.lease_owner = null; row.lease_until = null; }
  await db('composes').where('id', id).update(row);
}

/** An earlier compose with the same pinned inputs whose content can serve: done ones newest first, then generating ones oldest first. */
export async function reusableCompose(db: Db, pinsKey: string, beforeId: number): Promise<Compose | null> {
  const q = (state: string, dir: 'asc' | 'desc') => db<ComposeRow>('composes').where({ pins_key: pinsKey, state }).whereNull('reused_id')
    .andWhere('id', '<', beforeId).orderBy('id', dir).first();
  const row = (await q('done', 'desc')) ?? (await q('generating', 'asc'));
  return row ? toCompose(row) : null;
}

export async function findComposeForUpdate(db: Db, id: number): Promise<Compose | null> {
  const q = db<ComposeRow>('composes').where('id', id).first();
  if (db.client.config.client === 'pg') q.forUpdate();
  const row = await q;
  return row ? toCompose(row) : null;
}

export async function renewComposeLease(db: Db, id: number, owner: string, leaseMs: number): Promise<void> {
  await db('composes').where({ id, state: 'generating', lease_owner: owner }).update({ lease_until: instant(leaseMs) });
}

/** Reusers still waiting on their base. */
export async function generatingReusers(db: Db): Promise<Compose[]> {
  return (await db<ComposeRow>('composes').where('state', 'generating').whereNotNull('reused_id')).map(toCompose);
}

export async function reusersOf(db: Db, id: number): Promise<Compose[]> {
  return (await db<ComposeRow>('composes').where('reused_id', id)).map(toCompose);
}

/** Done or failed composes whose time is up. */
export async function expiredComposes(db: Db): Promise<Compose[]> {
  return (await db<ComposeRow>('composes').whereIn('state', ['done', 'failed']).andWhere('time_to_expire', '<', now()).orderBy('id')).map(toCompose);
}

/** Generating composes whose lease ran out, or held by owners starting with `prefix`. */
export async function orphanedComposes(db: Db, prefix: string): Promise<(Compose & { leaseOwner: string | null; leaseUntil: string | null })[]> {
  const rows = await db('composes').where('state', 'generating')
    .andWhere((w) => w.where('lease_until', '<', instant()).orWhere('lease_owner', 'like', `${prefix}%`));
  return rows.map((r: ComposeRow & { lease_owner: string | null; lease_until: string | null }) => ({ ...toCompose(r), leaseOwner: r.lease_owner, leaseUntil: r.lease_until }));
}

/** Removed composes whose own directory may still be on disk (they are not reusers). */
export async function removedOwners(db: Db): Promise<Compose[]> {
  return (await db<ComposeRow>('composes').where('state', 'removed').whereNull('reused_id')).map(toCompose);
}
