import crypto from 'node:crypto';
import { inTransaction, Knex, now } from '../db';
import * as store from '../store';
import type { Push } from '../store';
import { appendEvent } from './outbox';

const ZERO_ID = '0'.repeat(40);
export const GENESIS_HASH = '0'.repeat(64);

type Entry = Pick<Push, 'repoId' | 'seq' | 'userName' | 'transport' | 'at'> & { updates: { ref: string; oldId: string; newId: string }[] };

/** The hash that chains a repo's push records: each covers its own content and the hash before it. */
export function entryHash(prevHash: string, e: Entry): string {
  const lines = ['cairn-ledger-v1', `prev ${prevHash}`, `repo ${e.repoId}`, `seq ${e.seq}`, `user ${e.userName}`,
    `transport ${e.transport}`, `at ${e.at}`, ...e.updates.map((u) => `update ${u.ref} ${u.oldId} ${u.newId}`)];
  return crypto.createHash('sha256').update(lines.join('\n')).digest('hex');
}

/** The push the hook allowed, with its updates, in one transaction: all of it or none. */
export const recordPendingPush = (db: Knex, p: store.NewPush): Promise<number> =>
  inTransaction(db, (trx) => store.insertPendingPush(trx, p));

/**
 * Turns a pending push into what actually happened, judged by the refs on disk: an update whose ref
 * now holds its new id landed. A push with any landed update joins the ledger; one with none is void.
 * Runs once per push (the state guard), so a push is never recorded twice.
 */
export type Settled = { outcome: 'accepted' | 'void' | 'already'; seq: number | null; push: Push | null; diskRefs: ReadonlyMap<string, string> };

export async function settlePush(db: Knex, pushId: number,
  readDisk: (refs: string[]) => Promise<ReadonlyMap<string, string>>): Promise<Settled> {
  return inTransaction(db, async (trx) => {
    const push = await store.findPush(trx, pushId);
    if (!push || push.state !== 'pending') return { outcome: 'already', seq: push?.seq ?? null, push, diskRefs: new Map() };
    // Read under the caller's push lock, so nothing moves the refs between this read and the record.
    const diskRefs = await readDisk(push.updates.map((u) => u.ref));
    const applied = push.updates.filter((u) => (diskRefs.get(u.ref) ?? ZERO_ID) === u.newId);
    const settledAt = now();
    if (applied.length === 0) { await store.markVoid(trx, pushId, settledAt); return { outcome: 'void', seq: null, push, diskRefs }; }
    const head = await store.ledgerHead(trx, push.repoId);
    const seq = (head?.seq ?? 0) + 1;
    const prevHash = head?.hash ?? GENESIS_HASH;
    const hash = entryHash(prevHash, { ...push, seq, updates: applied });
    await store.markAccepted(trx, pushId, { seq, prevHash, hash, settledAt }, new Set(applied.map((u) => u.ref)),
      applied.length === push.updates.length);
    // The push event is written with the ledger entry: one exists exactly when the other does.
    await appendEvent(trx, push.repoId, 'push', { push_id: pushId, user: push.userName, transport: push.transport,
      updates: applied.map((u) => ({ ref: u.ref, old: u.oldId, new: u.newId })) }, push.at);
    return { outcome: 'accepted', seq, push, diskRefs };
  });
}

/** Only the updates that landed: what the API shows and the chain covers. */
export const appliedUpdates = (p: Push) => p.updates.filter((u) => u.applied);

/**
 * Checks one repo's ledger: an unbroken chain from genesis, and refs on disk equal to the state the
 * ledger ends in. Returns every difference found, empty when all is well.
 */
export function verifyLedger(pushes: readonly Push[], diskRefs: ReadonlyMap<string, string>): string[] {
  const problems: string[] = [];
  let prevHash = GENESIS_HASH;
  const state = new Map<string, string>();
  pushes.forEach((p, i) => {
    const updates = appliedUpdates(p);
    if (p.seq !== i + 1) problems.push(`push ${p.id}: sequence ${p.seq}, expected ${i + 1}`);
    if (p.prevHash !== prevHash) problems.push(`push ${p.id} (seq ${p.seq}): prev_hash does not match the record before it`);
    const expected = entryHash(p.prevHash ?? GENESIS_HASH, { ...p, updates });
    if (p.hash !== expected) problems.push(`push ${p.id} (seq ${p.seq}): hash does not match its content`);
    for (const u of updates) {
      const before = state.get(u.ref) ?? ZERO_ID;
      if (before !== u.oldId) problems.push(`push ${p.id} (seq ${p.seq}): ${u.ref} old ${u.oldId} but the ledger had ${before}`);
      state.set(u.ref, u.newId);
    }
    prevHash = p.hash ?? '';
  });
  for (const [ref, id] of state) {
    const onDisk = diskRefs.get(ref);
    if (onDisk !== id) problems.push(`${ref}: ledger ends at ${id}, disk has ${onDisk ?? 'nothing'}`);
  }
  for (const [ref, id] of diskRefs) {
    if (!state.has(ref)) problems.push(`${ref}: on disk at ${id} but never recorded`);
  }
  return problems;
}
