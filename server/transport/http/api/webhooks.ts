import { CairnError } from '../../../errors';
import * as store from '../../../store';
import type { WebhookScope, Webhook, DeliveryWithAttempts } from '../../../store';
import { requireRepoRole, requireTenantRole } from '../../../auth';
import type { Principal } from '../../../auth';
import type { ApiDeps, JsonSchema, Route } from './route';
import * as s from './schemas';
import { pageParams, pageResponse } from './paging';

const EVENT_NAMES = ['push', 'repo.created', 'run.state_changed', 'build.published', 'compose.state_changed'];

const createBody: JsonSchema = { type: 'object', additionalProperties: false, required: ['url', 'secret'], properties: {
  url: { type: 'string', pattern: '^https?://[^\\s]+$', maxLength: 2048 },
  secret: { type: 'string', minLength: 8, maxLength: 512 },
  events: { type: 'array', minItems: 1, uniqueItems: true, items: { type: 'string', enum: ['*', ...EVENT_NAMES] } } } };
const webhookSchema: JsonSchema = { type: 'object', additionalProperties: false, required: ['id', 'url', 'events', 'created_at'],
  properties: { id: { type: 'integer' }, url: { type: 'string' }, events: { type: 'array', items: { type: 'string' } },
    created_at: { type: 'string', format: 'date-time' } } };
const deliverySchema: JsonSchema = { type: 'object', required: ['id', 'event_id', 'event', 'state', 'attempts', 'attempts_log'],
  properties: { id: { type: 'integer' }, event_id: { type: 'integer' }, event: { type: 'string' },
    state: { type: 'string', enum: ['pending', 'sending', 'succeeded', 'failed'] }, attempts: { type: 'integer' },
    next_attempt_at: { type: 'string' }, created_at: { type: 'string' }, attempts_log: { type: 'array' } } };

const toApiWebhook = (w: Webhook) => ({ id: w.id, url: w.url, events: w.events, created_at: w.createdAt });
const toApiDelivery = (d: DeliveryWithAttempts) => ({ id: d.id, event_id: d.eventId, event: d.eventType, state: d.state,
  attempts: d.attempts, next_attempt_at: d.nextAttemptAt, created_at: d.createdAt,
  attempts_log: d.attemptsLog.map((a) => ({ at: a.at, status: a.status, duration_ms: a.durationMs, response_excerpt: a.responseExcerpt, error: a.error })) });

type Resolve = (deps: ApiDeps, principal: Principal, params: Record<string, string>) => Promise<WebhookScope>;

async function findHook(deps: ApiDeps, scope: WebhookScope, id: string): Promise<Webhook> {
  const hook = /^\d{1,15}$/.test(id) ? await store.findWebhook(deps.db, scope, Number(id)) : null;
  if (!hook) throw new CairnError('not_found', `no webhook ${id} here`);
  return hook;
}

/** Webhooks of a repo or a tenant: the same five routes, with who may manage them passed in. */
function webhookRoutes(base: string, what: string, resolve: Resolve): Route[] {
  return [
    {
      method: 'post', path: base, summary: `Add a webhook to a ${what}: signed the Standard Webhooks way, retried with backoff`,
      access: `${what} admins`, body: createBody,
      responses: { 201: { description: 'created (the secret is never shown again)', schema: webhookSchema } },
      handler: async ({ params, body, principal, deps }) => {
        const scope = await resolve(deps, principal, params);
        const hook = await store.insertWebhook(deps.db, scope, body.url, deps.secrets.seal(body.secret), body.events ?? ['*']);
        return { status: 201, body: toApiWebhook(hook) };
      },
    },
    {
      method: 'get', path: base, summary: `List a ${what}'s webhooks`, access: `${what} admins`,
      responses: { 200: { description: 'webhooks, oldest first', schema: s.list(webhookSchema) } },
      handler: async ({ params, principal, deps }) =>
        ({ status: 200, body: (await store.listWebhooks(deps.db, await resolve(deps, principal, params))).map(toApiWebhook) }),
    },
    {
      method: 'delete', path: `${base}/{id}`, summary: 'Remove a webhook (its delivery log stays)', access: `${what} admins`,
      responses: { 204: { description: 'removed' } },
      handler: async ({ params, principal, deps }) => {
        const hook = await findHook(deps, await resolve(deps, principal, params), params.id);
        await store.deactivateWebhook(deps.db, hook.id);
        return { status: 204 };
      },
    },
    {
      method: 'get', path: `${base}/{id}/deliveries`, summary: "A webhook's deliveries with every attempt (status, duration, response excerpt)",
      access: `${what} admins`, paged: true,
      responses: { 200: { description: 'deliveries, oldest first', schema: s.list(deliverySchema) } },
      handler: async (req) => {
        const hook = await findHook(req.deps, await resolve(req.deps, req.principal, req.params), req.params.id);
        const { limit, after } = pageParams(req);
        return pageResponse(req, await store.listDeliveries(req.deps.db, hook.id, limit + 1, after), limit, (d) => d.id, toApiDelivery);
      },
    },
    {
      method: 'post', path: `${base}/{id}/deliveries/{delivery}/redeliver`, summary: 'Send a delivery again now', access: `${what} admins`,
      responses: { 202: { description: 'queued' } },
      handler: async ({ params, principal, deps }) => {
        const hook = await findHook(deps, await resolve(deps, principal, params), params.id);
        const delivery = /^\d{1,15}$/.test(params.delivery) ? await store.findDelivery(deps.db, hook.id, Number(params.delivery)) : null;
        if (!delivery) throw new CairnError('not_found', `no delivery ${params.delivery} here`);
        await store.redeliver(deps.db, delivery.id);
        return { status: 202 };
      },
    },
  ];
}

export const webhookRoutesAll: Route[] = [
  ...webhookRoutes('/repos/{tenant}/{repo}/webhooks', 'repo', async (deps, principal, params) =>
    ({ kind: 'repo', repoId: (await requireRepoRole(deps.db, principal, params.tenant, params.repo, 'admin')).repo.id })),
  ...webhookRoutes('/tenants/{tenant}/webhooks', 'tenant', async (deps, principal, params) =>
    ({ kind: 'tenant', tenantId: (await requireTenantRole(deps.db, principal, params.tenant, 'admin')).tenant.id })),
];
