import { Db, instant, Knex, lockedIds, now } from '../db';

// Delivery times carry milliseconds (`instant`, one format throughout, so they compare as strings): retries start at 50 ms in tests.

export type WebhookScope = { kind: 'repo'; repoId: number } | { kind: 'tenant'; tenantId: number };
export type Webhook = { id: number; scope: WebhookScope; url: string; secretSealed: string; events: string[]; cursor: number;
  active: boolean; createdAt: string };
type WebhookRow = { id: number; repo_id: number | null; tenant_id: number | null; url: string; secret_sealed: string; events: string;
  cursor: number; active: boolean | number; created_at: string };
const toWebhook = (r: WebhookRow): Webhook => ({ id: r.id,
  scope: r.repo_id !== null ? { kind: 'repo', repoId: r.repo_id } : { kind: 'tenant', tenantId: r.tenant_id as number },
  url: r.url, secretSealed: r.secret_sealed, events: JSON.parse(r.events) as string[], cursor: r.cursor, active: Boolean(r.active),
  createdAt: r.created_at });
const scopeColumns = (s: WebhookScope) => ({ repo_id: s.kind === 'repo' ? s.repoId : null, tenant_id: s.kind === 'tenant' ? s.tenantId : null });

/** A new webhook hears events from its creation on: its cursor starts at the newest event. */
export async function insertWebhook(db: Db, scope: WebhookScope, url: string, secretSealed: string, events: string[]): Promise<Webhook> {
  const head = await db('events').max<{ id: number | null }>('id as id').first();
  const [row] = await db<WebhookRow>('webhooks').insert({ ...scopeColumns(scope), url, secret_sealed: secretSealed,
    events: JSON.stringify(events), cursor: head?.id ?? 0, active: true, created_at: now() }).returning('*');
  return toWebhook(row as WebhookRow);
}

export async function listWebhooks(db: Db, scope: WebhookScope): Promise<Webhook[]> {
  return (await db<WebhookRow>('webhooks').where({ ...scopeColumns(scope), active: true }).orderBy('id')).map(toWebhook);
}

export async function findWebhook(db: Db, scope: WebhookScope, id: number): Promise<Webhook | null> {
  const row = await db<WebhookRow>('webhooks').where({ ...scopeColumns(scope), id, active: true }).first();
  return row ? toWebhook(row) : null;
}

export async function activeWebhooks(db: Db): Promise<Webhook[]> {
  return (await db<WebhookRow>('webhooks').where('active', true).orderBy('id')).map(toWebhook);
}

/** Deleting keeps the row and its deliveries (the log stays); it only stops. */
export async function deactivateWebhook(db: Db, id: number): Promise<void> {
  await db('webhooks').where('id', id).update({ active: false });
}

export async function advanceWebhook(db: Db, id: number, cursor: number): Promise<void> {
  await db('webhooks').where('id', id).andWhere('cursor', '<', cursor).update({ cursor });
}

export type Delivery = { id: number; webhookId: number; eventId: number; state: string; attempts: number; nextAttemptAt: string; createdAt: string };
type DeliveryRow = { id: number; webhook_id: number; event_id: number; state: string; attempts: number; next_attempt_at: string;
  lease_until: string | null; created_at: string };
const toDelivery = (r: DeliveryRow): Delivery => ({ id: r.id, webhookId: r.webhook_id, eventId: r.event_id, state: r.state,
  attempts: r.attempts, nextAttemptAt: r.next_attempt_at, createdAt: r.created_at });

/** Queues events for a webhook; an event already queued for it is skipped (exactly once per consumer). */
export async function queueDeliveries(db: Db, webhookId: number, eventIds: number[]): Promise<void> {
  if (eventIds.length === 0) return;
  const at = instant();
  await db('webhook_deliveries').insert(eventIds.map((eventId) => ({ webhook_id: webhookId, event_id: eventId, state: 'pending',
    attempts: 0, next_attempt_at: at, created_at: at }))).onConflict(['webhook_id', 'event_id']).ignore();
}

/**
 * Claims due deliveries for one sender: pending ones whose time has come, and sending ones whose lease ran
 * out (their sender died). PostgreSQL skips rows another replica holds (FOR UPDATE SKIP LOCKED); SQLite has
 * one writer, so the single UPDATE is already exclusive.
 */
export async function claimDueDeliveries(db: Knex, limit: number, leaseMs: number, owner: string): Promise<Delivery[]> {
  const at = instant();
  const leaseUntil = instant(leaseMs);
  return db.transaction(async (trx) => {
    const ids = await lockedIds(trx, trx('webhook_deliveries').select('id')
      .where((w) => w.where('state', 'pending').andWhere('next_attempt_at', '<=', at))
      .orWhere((w) => w.where('state', 'sending').andWhere('lease_until', '<', at))
      .orderBy('id').limit(limit));
    if (ids.length === 0) return [];
    const rows = await trx('webhook_deliveries').whereIn('id', ids)
      .update({ state: 'sending', lease_until: leaseUntil, lease_owner: owner, attempts: trx.raw('attempts + 1') }).returning('*');
    return (rows as DeliveryRow[]).map(toDelivery);
  });
}

export async function finishDelivery(db: Db, id: number, outcome: { state: 'succeeded' | 'failed' | 'pending'; retryInMs?: number }): Promise<void> {
  await db('webhook_deliveries').where('id', id)
    .update({ state: outcome.state, lease_until: null, ...(outcome.retryInMs !== undefined ? { next_attempt_at: instant(outcome.retryInMs) } : {}) });
}

export async function recordAttempt(db: Db, deliveryId: number, a: { status: number | null; durationMs: number; responseExcerpt: string | null; error: string | null }): Promise<void> {
  await db('webhook_attempts').insert({ delivery_id: deliveryId, at: now(), status: a.status, duration_ms: a.durationMs,
    response_excerpt: a.responseExcerpt, error: a.error });
}

export type DeliveryWithAttempts = Delivery & { eventType: string; attemptsLog: { at: string; status: number | null; durationMs: number;
  responseExcerpt: string | null; error: string | null }[] };

export async function listDeliveries(db: Db, webhookId: number, limit: number, afterId: number): Promise<DeliveryWithAttempts[]> {
  const rows = await db('webhook_deliveries').join('events', 'events.id', 'webhook_deliveries.event_id')
    .where('webhook_id', webhookId).andWhere('webhook_deliveries.id', '>', afterId).orderBy('webhook_deliveries.id').limit(limit)
    .select('webhook_deliveries.*', 'events.type as event_type');
  const attempts = rows.length === 0 ? [] : await db('webhook_attempts').whereIn('delivery_id', rows.map((r: DeliveryRow) => r.id)).orderBy('id');
  return rows.map((r: DeliveryRow & { event_type: string }) => ({ ...toDelivery(r), eventType: r.event_type,
    attemptsLog: attempts.filter((a: { delivery_id: number }) => a.delivery_id === r.id).map((a: { at: string; status: number | null;
      duration_ms: number; response_excerpt: string | null; error: string | null }) =>
      ({ at: a.at, status: a.status, durationMs: a.duration_ms, responseExcerpt: a.response_excerpt, error: a.error })) }));
}

export async function findDelivery(db: Db, webhookId: number, id: number): Promise<Delivery | null> {
  const row = await db<DeliveryRow>('webhook_deliveries').where({ webhook_id: webhookId, id }).first();
  return row ? toDelivery(row) : null;
}

export async function redeliver(db: Db, id: number): Promise<void> {
  await db('webhook_deliveries').where('id', id).update({ state: 'pending', next_attempt_at: instant(), lease_until: null });
}

/** Leases held by owners whose name starts with `prefix` (this host's), for the caller to judge. */
export async function leasedDeliveries(db: Db, ownerPrefix: string): Promise<{ id: number; owner: string }[]> {
  return (await db('webhook_deliveries').where('state', 'sending').andWhere('lease_owner', 'like', `${ownerPrefix}%`)
    .select('id', 'lease_owner')).map((r: { id: number; lease_owner: string }) => ({ id: r.id, owner: r.lease_owner }));
}
