import crypto from 'node:crypto';
import os from 'node:os';
import { inTransaction, Knex, leaseAbandoned, leaseHolder } from '../db';
import type { Logger } from '../log';
import * as store from '../store';
import type { Delivery, Webhook } from '../store';
import { toEventPayload } from './outbox';

const MAX_ATTEMPTS = 9;
const MAX_DELAY_MS = 3600_000;
const TIMEOUT_MS = 10_000;
const TICK_MS = 250;
const BATCH = 16;

/**
 * Standard Webhooks signing: `v1,` and the base64 HMAC-SHA256 of `id.timestamp.body`. A `whsec_` secret is
 * base64 after its prefix (as the standard's libraries make them); any other is used as its bytes.
 */
export function signWebhook(secret: string, id: string, timestamp: number, body: string): string {
  const key = secret.startsWith('whsec_') ? Buffer.from(secret.slice(6), 'base64') : Buffer.from(secret, 'utf8');
  return `v1,${crypto.createHmac('sha256', key).update(`${id}.${timestamp}.${body}`).digest('base64')}`;
}

/** How long before the attempt after `attempts` failed ones: 1x, 2x, 4x … the base, capped at an hour. */
export const retryDelayMs = (attempts: number, baseMs: number): number => Math.min(baseMs * 2 ** Math.max(0, attempts - 1), MAX_DELAY_MS);

/**
 * Reads the outbox for every webhook (each from its own cursor), queues one delivery per (webhook, event),
 * and sends what is due — never on the push path: a slow or failing receiver only ever waits here.
 * Everything lives in the database, so a restart or a second replica picks up where this one stopped.
 */
export class WebhookWorker {
  private timer: NodeJS.Timeout | null = null;
  private running: Promise<void> | null = null;
  private again = false;
  private stopped = false;

  /** This process, as a lease owner: `host:pid`. */
  private readonly owner = leaseHolder();

  constructor(private readonly db: Knex, private readonly openSecret: (sealed: string) => string,
    private readonly retryBaseMs: number, private readonly isAlive: (pid: number) => boolean, private readonly log: Logger) {}

  /**
   * Deliveries this host's earlier processes were sending when they died go back to the queue at once
   * (a lease of this very pid is a predecessor's: a container restarts with the same pid).
   */
  async reclaimOrphans(): Promise<number> {
    let n = 0;
    for (const lease of await store.leasedDeliveries(this.db, `${os.hostname()}:`)) {
      if (leaseAbandoned(lease.owner, null, true, this.isAlive)) { await store.redeliver(this.db, lease.id); n++; }
    }
    return n;
  }

  start(): void { this.loop(); }

  /** New events were just written here: look now instead of at the next tick. */
  nudge(): void {
    if (this.running) { this.again = true; return; }
    this.loop();
  }

  private loop(): void {
    if (this.stopped) return;
    if (this.timer) clearTimeout(this.timer);
    this.running = this.tick().catch((err) => { this.log.error({ err }, 'webhook worker tick failed'); return false; })
      .then((busy) => {
        this.running = null;
        if (this.stopped) return;
        // A full batch means a backlog: keep going at once rather than at the tick.
        if (busy || this.again) { this.again = false; this.loop(); } else this.timer = setTimeout(() => this.loop(), TICK_MS);
      });
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    await this.running;
  }

  /** One round: queue new events, send what is due. True when it found a full batch (more may be waiting). */
  private async tick(): Promise<boolean> {
    for (const hook of await store.activeWebhooks(this.db)) await this.fanOut(hook);
    const due = await store.claimDueDeliveries(this.db, BATCH, TIMEOUT_MS * 3, this.owner);
    await Promise.all(due.map((d) => this.send(d)));
    return due.length === BATCH;
  }

  private async fanOut(hook: Webhook): Promise<void> {
    const scope = hook.scope.kind === 'repo' ? { repoId: hook.scope.repoId } : { tenantId: hook.scope.tenantId };
    const events = await store.eventsInScope(this.db, scope, hook.cursor, 500);
    if (events.length === 0) return;
    const wanted = events.filter((e) => hook.events.includes('*') || hook.events.includes(e.type)).map((e) => e.id);
    await inTransaction(this.db, async (trx) => {
      await store.queueDeliveries(trx, hook.id, wanted);
      await store.advanceWebhook(trx, hook.id, events[events.length - 1].id);
    });
  }

  private async send(d: Delivery): Promise<void> {
    const [hook, event] = await Promise.all([this.db('webhooks').where('id', d.webhookId).first(), store.findEvent(this.db, d.eventId)]);
    const repo = event ? await store.findRepoById(this.db, event.repoId) : null;
    if (!hook || !event || !repo || !hook.active) { await store.finishDelivery(this.db, d.id, { state: 'failed' }); return; }
    const body = JSON.stringify(toEventPayload(event, `${repo.tenantName}/${repo.name}`));
    const id = `evt_${event.id}`;
    const timestamp = Math.floor(Date.now() / 1000);
    const started = Date.now();
    let status: number | null = null; let excerpt: string | null = null; let error: string | null = null;
    try {
      const res = await fetch(hook.url, { method: 'POST', body, redirect: 'manual', signal: AbortSignal.timeout(TIMEOUT_MS),
        headers: { 'content-type': 'application/json', 'user-agent': 'Cairn-Webhooks', 'webhook-id': id,
          'webhook-timestamp': String(timestamp), 'webhook-signature': signWebhook(this.openSecret(hook.secret_sealed), id, timestamp, body) } });
      status = res.status;
      excerpt = (await res.text()).slice(0, 1024);
    } catch (err) {
      // The receiver's fault (unreachable, too slow, reset): an attempt that failed, logged and retried.
      error = (err as Error).name === 'TimeoutError' ? `no answer in ${TIMEOUT_MS} ms` : String((err as Error).message).slice(0, 500);
    }
    const durationMs = Date.now() - started;
    await store.recordAttempt(this.db, d.id, { status, durationMs, responseExcerpt: excerpt, error });
    const ok = status !== null && status >= 200 && status < 300;
    await store.finishDelivery(this.db, d.id, ok ? { state: 'succeeded' } : d.attempts >= MAX_ATTEMPTS ? { state: 'failed' }
      : { state: 'pending', retryInMs: retryDelayMs(d.attempts, this.retryBaseMs) });
    this.log.info({ webhook_id: d.webhookId, delivery_id: d.id, event_id: event.id, attempt: d.attempts, status, duration_ms: durationMs,
      error }, ok ? 'webhook delivered' : 'webhook delivery failed');
  }
}
