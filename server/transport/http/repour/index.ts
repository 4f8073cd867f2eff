import type { Context } from 'koa';
import getRawBody from 'raw-body';
import { CairnError } from '../../../errors';
import { principalFromHeader, requireTokenPermission } from '../../../auth';
import { metrics } from '../../../metrics';
import { errorResult } from '../../../archive';
import type { Archive, ArchiveEndpoint } from '../../../archive';
import type { Knex } from '../../../db';
import type { Logger } from '../../../log';
import { Endpoint, ENDPOINTS, validateBody } from './validation';

export { validateBody } from './validation';

export const REPOUR_PREFIX = '/repour';
const MAX_BODY_BYTES = 1024 * 1024;
const VERSION = { name: 'Repour', version: '3.0.6-cairn', commit: 'Unknown', builtOn: null, components: [] as string[] };

type RepourDeps = { db: Knex; signingKey: Buffer; log: Logger; archive?: Archive; config: { archive: { allowedCallbacks: readonly string[] } } };

/**
 * Repour's HTTP API at /repour, in Repour's shapes throughout (so an existing client works unchanged): its
 * three error bodies, 401/403 with empty bodies, callback mode. Every POST needs a token with the
 * `archive` permission. Validation always answers synchronously, before callback mode is decided.
 */
export async function serveRepour(ctx: Context, deps: RepourDeps): Promise<void> {
  const sub = ctx.path.slice(REPOUR_PREFIX.length).replace(/^\/+/, '');
  const started = process.hrtime.bigint();
  // Only known names become label values: a path a caller makes up must not grow the metric.
  const endpoint = sub.startsWith('cancel/') ? 'cancel' : ENDPOINTS.includes(sub as Endpoint) || sub === 'version' ? sub : sub === '' ? 'root' : 'other';
  try {
    if (ctx.method === 'GET' && (sub === 'version' || sub === '')) {
      ctx.set('Access-Control-Allow-Origin', '*');
      ctx.body = sub === 'version' ? VERSION : `<html><body><h1>Repour (Cairn)</h1><p>${VERSION.version}</p></body></html>`;
      return;
    }
    const isCancel = /^cancel\/[^/]+$/.test(sub);
    if (!isCancel && !ENDPOINTS.includes(sub as Endpoint)) { ctx.status = 404; ctx.body = ''; return; }
    if (ctx.method !== 'POST') { ctx.status = 405; ctx.set('Allow', 'POST'); ctx.body = ''; return; }
    const user = await authorize(ctx, deps);
    if (!user) return;
    if (!deps.archive) throw new Error('the archive is not wired');
    if (isCancel) {
      const taskId = decodeURIComponent(sub.slice('cancel/'.length));
      if (await deps.archive.cancel(taskId)) { ctx.body = [{ message: `Tasks with task_id: ${taskId} cancelled` }]; return; }
      ctx.status = 400; ctx.body = [{ error_message: `task id ${taskId} not found!` }];
      return;
    }
    const body = await readJson(ctx);
    if (body === undefined) return;
    const errors = validateBody(sub as Endpoint, body, deps.config.archive.allowedCallbacks);
    if (errors.length > 0) { metrics.archiveErrors.inc({ kind: 'validation' }); ctx.status = 400; ctx.body = errors; return; }
    const request = body as Record<string, unknown>;
    const result = sub === 'git-external-to-internal' ? deps.archive.externalToInternal(request.external_url as string)
      : await deps.archive.call({ endpoint: sub as ArchiveEndpoint, request: withoutCallback(request), user,
        taskId: (request.taskId as string | null | undefined) ?? null, callback: callbackOf(request) });
    if (result.status >= 400) metrics.archiveErrors.inc({ kind: String(result.status) });
    ctx.status = result.status;
    ctx.body = result.body;
  } catch (err) {
    deps.log.error({ err, path: ctx.path }, 'archive API error');
    const answer = errorResult(err);
    metrics.archiveErrors.inc({ kind: String(answer.status) });
    ctx.status = answer.status;
    ctx.body = answer.body;
  } finally {
    metrics.archiveRequestDuration.observe({ endpoint }, Number(process.hrtime.bigint() - started) / 1e9);
  }
}

/** As Repour's auth middleware: no or bad credentials 401, a token without the archive permission 403, both with empty bodies. */
async function authorize(ctx: Context, deps: RepourDeps): Promise<{ id: number; name: string } | null> {
  try {
    const principal = await principalFromHeader(deps.db, deps.signingKey, ctx.get('authorization') || undefined);
    const user = requireTokenPermission(principal, 'archive');
    return { id: user.id, name: user.name };
  } catch (err) {
    if (!(err instanceof CairnError)) throw err;
    ctx.status = err.status === 403 ? 403 : 401;
    if (ctx.status === 401) ctx.set('WWW-Authenticate', 'Bearer realm="Cairn"');
    ctx.body = '';
    return null;
  }
}

async function readJson(ctx: Context): Promise<unknown> {
  let raw: string;
  try {
    raw = await getRawBody(ctx.req, { limit: MAX_BODY_BYTES, encoding: 'utf8' });
  } catch (err) {
    if ((err as { type?: string }).type === 'entity.too.large') { ctx.status = 413; ctx.body = ''; return undefined; }
    throw err;
  }
  try {
    return JSON.parse(raw);
  } catch {
    metrics.archiveErrors.inc({ kind: 'validation' });
    ctx.status = 400;
    ctx.body = [{ error_message: 'expected json', error_type: 'json parsability', path: [] }];
    return undefined;
  }
}

const withoutCallback = (r: Record<string, unknown>): Record<string, unknown> => {
  const { callback: _c, positiveCallback: _p, negativeCallback: _n, ...rest } = r;
  return rest;
};

type CallbackBody = { url?: string; uri?: string; method?: string } | undefined;

/**
 * Callback mode, as Repour decides it: `callback`, or both `positiveCallback` and `negativeCallback`.
 * A 200 result goes to positiveCallback (else callback), any other to negativeCallback (else callback).
 */
function callbackOf(r: Record<string, unknown>): { url: string; method: string; failureUrl: string; failureMethod: string } | null {
  const [c, pos, neg] = [r.callback, r.positiveCallback, r.negativeCallback] as CallbackBody[];
  if (!c && !(pos && neg)) return null;
  const success = (pos ?? c)!; const failure = (neg ?? c)!;
  return { url: (success.url ?? success.uri)!, method: success.method ?? 'POST', failureUrl: (failure.url ?? failure.uri)!,
    failureMethod: failure.method ?? 'POST' };
}
