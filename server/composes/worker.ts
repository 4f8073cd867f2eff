import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { inTransaction, Knex, leaseAbandoned, leaseHolder, now } from '../db';
import type { Logger } from '../log';
import * as store from '../store';
import type { Compose, ComposeState } from '../store';
import { appendEvent } from '../events';
import { materialize, PinDeps, PinError, pinsKey, resolvePins } from './generate';

export type ComposeDeps = PinDeps & { log: Logger; publicUrl: () => string; workers: number; defaultTtl: number; maxTtl: number };

export const STATE_CODES: Record<ComposeState, number> = { wait: 0, generating: 1, done: 2, removed: 3, failed: 4 };

/**
 * What an event on one repository may say about a compose: only that repository's entries and pins, since
 * its readers need not be able to read the others.
 */
function composeJsonFor(publicUrl: string, c: Compose, repo: string): Record<string, unknown> {
  const json = composeJson(publicUrl, c);
  const mine = (entry: string) => entry.split('#')[0] === repo;
  return { ...json, source: c.sourceType === 'compose' ? c.source : c.source.split(' ').filter(mine).join(' '),
    pins: c.pins ? c.pins.filter((p) => p.repo === repo) : null, toplevel_url: null };
}

async function composeEvent(trx: Knex.Transaction, d: ComposeDeps, c: Compose): Promise<void> {
  for (const repoId of await store.composeRepoIds(trx, c.id)) {
    const repo = await store.findRepoById(trx, repoId);
    if (repo) await appendEvent(trx, repoId, 'compose.state_changed', { compose: composeJsonFor(d.publicUrl(), c, `${repo.tenantName}/${repo.name}`) }, now());
  }
}

/** ODCS's JSON for a compose, with Cairn's pins; `toplevel_url` names the compose whose files it uses. */
export function composeJson(publicUrl: string, c: Compose): Record<string, unknown> {
  return { id: c.id, owner: c.owner, source_type: c.sourceType, source: c.source, state: STATE_CODES[c.state], state_name: c.state,
    state_reason: c.stateReason, time_to_expire: c.timeToExpire, time_submitted: c.timeSubmitted, time_started: c.timeStarted,
    time_done: c.timeDone, time_removed: c.timeRemoved, removed_by: c.removedBy, flags: c.flags, label: c.label,
    seconds_to_live: c.secondsToLive, pins: c.pins,
    toplevel_url: c.state === 'done' ? `${publicUrl}/composes/odcs-${c.reusedId ?? c.id}/` : null };
}

/** Writes a state change and its `compose.state_changed` event (one per repository it draws on), in one transaction. */
export async function transition(trx: Knex.Transaction, d: ComposeDeps, id: number, to: ComposeState, reason: string,
  extra: Parameters<typeof store.updateCompose>[2] = {}): Promise<Compose> {
  const fields: Parameters<typeof store.updateCompose>[2] = { ...extra, state: to, stateReason: reason };
  const before = (await store.findCompose(trx, id))!;
  if (to === 'done' || to === 'failed') {
    fields.timeDone = now();
    // As ODCS does: the time to live counts from when the compose is finished.
    fields.timeToExpire = store.secondsFromNow(before.secondsToLive);
  }
  if (to === 'removed') fields.timeRemoved = now();
  await store.updateCompose(trx, id, fields);
  const after = (await store.findCompose(trx, id))!;
  await composeEvent(trx, d, after);
  // Composes waiting on this one's content end as it does.
  if (to === 'done' || to === 'failed') {
    for (const r of await store.reusersOf(trx, id)) if (r.state === 'generating') await transition(trx, d, r.id, to, reason);
  }
  return after;
}

/** A new compose in `wait`, and its event. */
export async function submitCompose(trx: Knex.Transaction, d: ComposeDeps, c: Omit<store.NewCompose, 'secondsToLive'> & { secondsToLive: number | null }): Promise<Compose> {
  const ttl = Math.min(c.secondsToLive ?? d.defaultTtl, d.maxTtl);
  const created = await store.insertCompose(trx, { ...c, secondsToLive: ttl });
  await composeEvent(trx, d, created);
  return created;
}

const LEASE_MS = 60_000;
const TICK_MS = 500;
const SWEEP_MS = 2_000;

/**
 * Generates waiting composes, at most `workers` at a time per process, and removes expired ones. State is
 * in the database (leases as for runs), so replicas share the work and a restart picks it up.
 */
export class ComposeWorker {
  private readonly owner = leaseHolder();
  private active = 0;
  private timers: NodeJS.Timeout[] = [];
  private stopped = false;
  private filling: Promise<void> | null = null;
  private readonly running = new Set<Promise<void>>();

  constructor(private readonly d: ComposeDeps, private readonly isAlive: (pid: number) => boolean) {}

  async start(): Promise<void> {
    fs.mkdirSync(this.d.composesDir, { recursive: true });
    // What a killed generator left half-written is never served, and goes now.
    for (const name of fs.readdirSync(this.d.composesDir)) {
      if (name.startsWith('.tmp-odcs-')) fs.rmSync(path.join(this.d.composesDir, name), { recursive: true, force: true });
    }
    await this.recover(true);
    const tick = () => { this.wake(); if (!this.stopped) this.timers[0] = setTimeout(tick, TICK_MS); };
    const sweep = () => {
      this.sweep().catch((err) => this.d.log.error({ err }, 'compose sweep failed'))
        .finally(() => { if (!this.stopped) this.timers[1] = setTimeout(sweep, SWEEP_MS); });
    };
    tick(); sweep();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    for (const t of this.timers) clearTimeout(t);
    await this.filling;
    await Promise.all(this.running);
  }

  /** A removal was asked for: sweep now rather than at the next round. */
  sweepSoon(): void {
    this.sweep().catch((err) => this.d.log.error({ err }, 'compose sweep failed'));
  }

  wake(): void {
    if (this.stopped || this.filling) return;
    this.filling = this.fill().catch((err) => this.d.log.error({ err }, 'compose worker failed')).finally(() => { this.filling = null; });
  }

  /**
   * Generating composes whose generator is gone start again from `wait` (their pins, if any, are kept). A
   * reuser has no generator: it ends as its base did, or starts over on its own if the base went away.
   */
  private async recover(atStart: boolean): Promise<void> {
    for (const c of await store.orphanedComposes(this.d.db, `${os.hostname()}:`)) {
      if (c.reusedId !== null || !leaseAbandoned(c.leaseOwner, c.leaseUntil, atStart, this.isAlive)) continue;
      await inTransaction(this.d.db, (trx) => transition(trx, this.d, c.id, 'wait', 'Generation restarted: the server generating it stopped'));
    }
    for (const r of await store.generatingReusers(this.d.db)) {
      await inTransaction(this.d.db, async (trx) => {
        const current = await store.findCompose(trx, r.id);
        const base = current?.reusedId ? await store.findCompose(trx, current.reusedId) : null;
        if (!current || current.state !== 'generating' || !base || base.state === 'generating') return;
        if (base.state === 'done') await transition(trx, this.d, r.id, 'done', `Compose is generated successfully (content of compose ${base.id} reused)`);
        else if (base.state === 'failed') await transition(trx, this.d, r.id, 'failed', base.stateReason ?? 'Error while generating compose');
        else await transition(trx, this.d, r.id, 'wait', `Compose ${base.id}, whose content it was to reuse, is gone: generating on its own`, { reusedId: null });
      });
    }
  }

  private async fill(): Promise<void> {
    while (!this.stopped && this.active < this.d.workers) {
      const c = await inTransaction(this.d.db, async (trx) => {
        const claimed = await store.claimCompose(trx, this.owner, LEASE_MS);
        if (claimed) await transition(trx, this.d, claimed.id, 'generating', 'Compose thread started', { leaseUntil: new Date(Date.now() + LEASE_MS).toISOString() });
        return claimed;
      });
      if (!c) return;
      this.active++;
      const p = this.generate(c).finally(() => { this.active--; this.running.delete(p); this.wake(); });
      this.running.add(p);
    }
  }

  private async generate(c: Compose): Promise<void> {
    const started = Date.now();
    const lease = setInterval(() => { store.renewComposeLease(this.d.db, c.id, this.owner, LEASE_MS).catch(() => undefined); }, LEASE_MS / 4);
    try {
      const { pins, repoIds } = await resolvePins(this.d, c);
      const key = pinsKey(pins);
      // A compose others already reuse never becomes a reuser itself: no chains.
      const reuse = c.flags.includes('no_reuse') || (await store.reusersOf(this.d.db, c.id)).length > 0 ? null
        : await store.reusableCompose(this.d.db, key, c.id);
      const reused = await inTransaction(this.d.db, async (trx) => {
        await store.setComposeRepos(trx, c.id, repoIds);
        await store.updateCompose(trx, c.id, { pins, pinsKey: key, stateReason: 'Compose is generating' });
        if (!reuse) return false;
        // The base, locked for this transaction, decides: done now, still generating, or gone (then generate).
        const base = await store.findComposeForUpdate(trx, reuse.id);
        if (!base || (base.state !== 'done' && base.state !== 'generating')) return false;
        await store.updateCompose(trx, c.id, { reusedId: base.id });
        // Both live as long as the longer-lived of them.
        const later = [base.timeToExpire, store.secondsFromNow(c.secondsToLive)].sort()[1];
        if (later > base.timeToExpire) await store.updateCompose(trx, base.id, { timeToExpire: later });
        if (base.state === 'done') await transition(trx, this.d, c.id, 'done', `Compose is generated successfully (content of compose ${base.id} reused)`);
        return true;
      });
      if (reused) {
        this.d.log.info({ compose: c.id, reused: reuse!.id }, 'compose reuses an identical one');
        return;
      }
      await materialize(this.d, c.id, pins);
      await inTransaction(this.d.db, (trx) => transition(trx, this.d, c.id, 'done', 'Compose is generated successfully'));
      this.d.log.info({ compose: c.id, pins: pins.length, ms: Date.now() - started }, 'compose generated');
    } catch (err) {
      if (!(err instanceof PinError)) this.d.log.error({ err, compose: c.id }, 'compose generation failed');
      await inTransaction(this.d.db, (trx) => transition(trx, this.d, c.id, 'failed', `Error while generating compose: ${(err as Error).message}`));
    } finally {
      clearInterval(lease);
    }
  }

  /**
   * Expired composes become `removed`; a directory goes only when no live compose uses it (its own, or a
   * reuser's). Within SWEEP_MS of expiry.
   */
  async sweep(): Promise<void> {
    await this.recover(false);
    for (const c of await store.expiredComposes(this.d.db)) {
      await inTransaction(this.d.db, async (trx) => {
        const current = await store.findCompose(trx, c.id);
        // Renewed since it was listed: not expired after all.
        if (!current || !['done', 'failed'].includes(current.state) || current.timeToExpire >= now()) return;
        const why = current.removedBy ? `Removed by ${current.removedBy}.` : 'Compose is expired.';
        await transition(trx, this.d, c.id, 'removed', current.stateReason ? `${current.stateReason}\n${why}` : why);
      });
    }
    for (const c of await store.removedOwners(this.d.db)) {
      const dir = path.join(this.d.composesDir, `odcs-${c.id}`);
      if (!fs.existsSync(dir)) continue;
      const live = (await store.reusersOf(this.d.db, c.id)).some((r) => r.state !== 'removed' && r.state !== 'failed');
      if (!live) fs.rmSync(dir, { recursive: true, force: true });
    }
    this.pruneCache();
  }

  /** Cached tarballs no compose links to any more (one link left: the cache's own). */
  private pruneCache(): void {
    const dir = path.join(this.d.composesDir, '.cache', 'git');
    if (!fs.existsSync(dir)) return;
    for (const name of fs.readdirSync(dir)) {
      if (name.endsWith('.sha256')) continue;
      const file = path.join(dir, name);
      try {
        const st = fs.statSync(file);
        // Unlinked tarballs after an hour (a generator may be about to link one), with their sums; a temp file a killed generator left.
        if (st.nlink === 1 && Date.now() - st.mtimeMs > 3600_000) { fs.rmSync(file); fs.rmSync(`${file}.sha256`, { force: true }); }
      } catch { /* raced */ }
    }
  }
}
