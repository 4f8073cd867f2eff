import path from 'node:path';
import getRawBody from 'raw-body';
import type { Context } from 'koa';
import { CairnError } from '../../errors';
import { inTransaction, now } from '../../db';
import * as store from '../../store';
import type { Compose, Repo } from '../../store';
import { isAdmin, principalFromHeader, principalName, readableRepos, repoRole } from '../../auth';
import type { Principal } from '../../auth';
import { composeJson, parseComposeRequest, reposOf, RequestError, STATE_CODES, submitCompose, transition } from '../../composes';
import type { ComposeDeps, ComposeRequest } from '../../composes';
import type { ApiDeps } from './api';
import { serveTree, treePath } from './artifacts';

export const ODCS_PREFIX = '/api/1/';
export const COMPOSES_PREFIX = '/composes/';

/** ODCS's error envelope: `{status, error, message}`. */
class OdcsError extends Error {
  constructor(readonly status: number, message: string) { super(message); }
}
const REASONS: Record<number, string> = { 400: 'Bad Request', 401: 'Unauthorized', 403: 'Forbidden', 404: 'Not Found', 405: 'Method Not Allowed', 500: 'Internal Server Error' };

const ORDER_KEYS = ['id', 'owner', 'source_type', 'state', 'time_to_expire', 'time_submitted', 'time_done', 'time_removed'];
const FILTERS = ['owner', 'source_type', 'source', 'state', 'label'] as const;

/** `/api/1/…`: composes the ODCS way (its paths, shapes, states and error envelope), on Cairn's sources. */
export async function serveOdcs(ctx: Context, deps: ApiDeps, composes: ComposeDeps): Promise<void> {
  try {
    ctx.body = await route(ctx, deps, composes);
  } catch (err) {
    const e = err instanceof OdcsError ? err : err instanceof CairnError && err.status < 500 ? new OdcsError(err.status, err.message) : null;
    if (!e) { deps.log.error({ err, path: ctx.path }, 'unhandled error'); }
    const status = e?.status ?? 500;
    ctx.status = status;
    ctx.body = { status, error: REASONS[status] ?? 'Error', message: e?.message ?? 'internal error' };
  }
}

async function route(ctx: Context, deps: ApiDeps, composes: ComposeDeps): Promise<unknown> {
  const p = ctx.path.slice(ODCS_PREFIX.length).replace(/\/+$/, '');
  const principal = await principalFromHeader(deps.db, deps.signingKey, ctx.get('authorization') || undefined);
  if (p === 'about') return { version: '1', auth_backend: 'cairn-token', source_types: ['git', 'build', 'compose'],
    seconds_to_live: composes.defaultTtl, max_seconds_to_live: composes.maxTtl };
  if (p === 'composes') {
    if (ctx.method === 'GET') return list(ctx, deps, principal);
    if (ctx.method === 'POST') { ctx.status = 200; return create(ctx, deps, composes, principal); }
    throw new OdcsError(405, `${ctx.method} is not allowed here`);
  }
  const m = /^composes\/(\d{1,15})$/.exec(p);
  if (!m) throw new OdcsError(404, 'Not found');
  const id = Number(m[1]);
  if (ctx.method === 'GET') return composeJson(deps.publicUrl(), await visibleCompose(deps, principal, id, 'No such compose found.'));
  if (ctx.method === 'PATCH') return renew(ctx, deps, composes, principal, id);
  if (ctx.method === 'DELETE') { ctx.status = 202; return remove(deps, composes, principal, id); }
  throw new OdcsError(405, `${ctx.method} is not allowed here`);
}

/**
 * Admins, and whoever can read every repository the compose draws on, now: its owner too loses sight of it
 * with their access. One that draws on none (it failed before pinning) is its owner's.
 */
async function canSee(deps: ApiDeps, principal: Principal, c: Compose): Promise<boolean> {
  if (isAdmin(principal)) return true;
  const repoIds = await store.composeRepoIds(deps.db, c.id);
  if (repoIds.length === 0) return principal.kind === 'user' && principal.user.name === c.owner;
  for (const repoId of repoIds) {
    const repo = await store.findRepoById(deps.db, repoId);
    if (!repo || (await repoRole(deps.db, principal, repo)) === 'none') return false;
  }
  return true;
}

async function visibleCompose(deps: ApiDeps, principal: Principal, id: number, notFound: string): Promise<Compose> {
  const c = await store.findCompose(deps.db, id);
  if (!c || !(await canSee(deps, principal, c))) throw new OdcsError(404, notFound);
  return c;
}

function requireSignedIn(principal: Principal): string {
  if (principal.kind !== 'user') throw new OdcsError(401, 'a user token is required (Authorization: Bearer TOKEN)');
  return principal.user.name;
}

/** ODCS's allowed_clients: a user's own entry if there is one, else the entries of their groups (tenants they belong to). */
async function requireAllowed(deps: ApiDeps, _composes: ComposeDeps | null, principal: Principal, sourceType: string): Promise<void> {
  const name = requireSignedIn(principal);
  if (isAdmin(principal)) return;
  const allowed = deps.config.composeAllowedClients;
  let types: string[] | null = allowed.users[name] ?? null;
  if (types === null && principal.kind === 'user') {
    const groups = await store.tenantsOfUser(deps.db, principal.user.id);
    const entries = groups.map((g) => allowed.groups[g]).filter((t): t is string[] => Array.isArray(t));
    if (entries.length > 0) types = entries.flat();
  }
  if (types === null) throw new OdcsError(403, `User ${name} is not in role allowed_clients.`);
  if (!types.includes(sourceType)) throw new OdcsError(403, `User ${name} not allowed to operate with compose with source_types=${sourceType}.`);
}

/** Why this principal may not create composes of this type (the pipeline save asks, for its `compose`), or null. */
export async function composeRefusal(deps: ApiDeps, principal: Principal, sourceType: string): Promise<string | null> {
  try { await requireAllowed(deps, null, principal, sourceType); return null; } catch (err) {
    if (err instanceof OdcsError) return err.message;
    throw err;
  }
}

async function readBody(ctx: Context): Promise<unknown> {
  let raw: string;
  try { raw = await getRawBody(ctx.req, { limit: 256 * 1024, encoding: 'utf8' }); } catch { throw new OdcsError(400, 'request body too large or unreadable'); }
  if (raw.trim() === '') return {};
  try { return JSON.parse(raw); } catch { throw new OdcsError(400, 'Failed to decode JSON object'); }
}

function parse(body: unknown): ComposeRequest {
  try { return parseComposeRequest(body); } catch (err) {
    if (err instanceof RequestError) throw new OdcsError(400, err.message);
    throw err;
  }
}

/** Repositories a new compose draws on, as far as the caller can see them now (pinning checks again, as the owner). */
async function namedRepoIds(deps: ApiDeps, principal: Principal, r: ComposeRequest): Promise<number[]> {
  if (r.sourceType === 'compose') {
    const ids: number[] = [];
    for (const e of r.entries) {
      const c = await store.findCompose(deps.db, Number(e));
      if (c && (await canSee(deps, principal, c))) ids.push(...(await store.composeRepoIds(deps.db, c.id)));
    }
    return ids;
  }
  const ids: number[] = [];
  for (const full of reposOf(r)) {
    const [tenant, name] = full.split('/');
    const repo = await store.findRepo(deps.db, tenant, name);
    if (repo && (await repoRole(deps.db, principal, repo)) !== 'none') ids.push(repo.id);
  }
  return ids;
}

async function create(ctx: Context, deps: ApiDeps, composes: ComposeDeps, principal: Principal): Promise<unknown> {
  requireSignedIn(principal);
  const r = parse(await readBody(ctx));
  await requireAllowed(deps, composes, principal, r.sourceType);
  const repoIds = await namedRepoIds(deps, principal, r);
  const c = await inTransaction(deps.db, (trx) => submitCompose(trx, composes, { owner: principalName(principal), sourceType: r.sourceType,
    source: r.entries.join(' '), flags: r.flags, label: r.label, secondsToLive: r.secondsToLive, repoIds }));
  deps.composes.wake();
  return composeJson(deps.publicUrl(), c);
}

/** PATCH: a done compose lives longer (never shorter); a removed or failed one is made again from its pins. */
async function renew(ctx: Context, deps: ApiDeps, composes: ComposeDeps, principal: Principal, id: number): Promise<unknown> {
  requireSignedIn(principal);
  const c = await visibleCompose(deps, principal, id, `No compose with id ${id} found`);
  const body = await readBody(ctx) as Record<string, unknown>;
  if (typeof body !== 'object' || body === null || Array.isArray(body)) throw new OdcsError(400, 'the body must be a JSON object');
  for (const k of Object.keys(body)) if (k !== 'seconds_to_live' && k !== 'seconds-to-live') throw new OdcsError(400, `unknown field "${k}"`);
  const asked = body.seconds_to_live ?? body['seconds-to-live'];
  if (asked !== undefined && (typeof asked !== 'number' || !Number.isInteger(asked) || asked <= 0)) throw new OdcsError(400, 'seconds_to_live should be a positive integer');
  const ttl = Math.min((asked as number | undefined) ?? c.secondsToLive, composes.maxTtl);
  await requireAllowed(deps, composes, principal, c.sourceType);
  if (c.state === 'done') {
    const until = store.secondsFromNow(ttl);
    await inTransaction(deps.db, async (trx) => {
      const related = [c, ...(c.reusedId ? [(await store.findCompose(trx, c.reusedId))!] : []), ...(await store.reusersOf(trx, c.id))];
      for (const x of related) if (x.timeToExpire < until) await store.updateCompose(trx, x.id, { timeToExpire: until });
    });
    return composeJson(deps.publicUrl(), (await store.findCompose(deps.db, id))!);
  }
  if (c.state !== 'removed' && c.state !== 'failed') throw new OdcsError(404, `No compose with id ${id} found`);
  const repoIds = await store.composeRepoIds(deps.db, c.id);
  const copy = await inTransaction(deps.db, (trx) => submitCompose(trx, composes, { owner: principalName(principal), sourceType: c.sourceType,
    source: c.source, flags: c.flags, label: c.label, secondsToLive: ttl, pins: c.pins, repoIds }));
  deps.composes.wake();
  return composeJson(deps.publicUrl(), copy);
}

/** DELETE: cancels a waiting compose (its owner or an admin), or removes a done or failed one (admins), as ODCS does. */
async function remove(deps: ApiDeps, composes: ComposeDeps, principal: Principal, id: number): Promise<unknown> {
  const name = requireSignedIn(principal);
  const c = await visibleCompose(deps, principal, id, 'No such compose found.');
  if (c.state === 'wait') {
    if (!isAdmin(principal) && c.owner !== name) throw new OdcsError(403, `Compose (id=${id}) can not be canceled, it's owned by someone else.`);
    const done = await inTransaction(deps.db, async (trx) => {
      const current = await store.findCompose(trx, id);
      if (current?.state !== 'wait') return false;
      await transition(trx, composes, id, 'failed', `Canceled by ${name}`);
      return true;
    });
    if (done) return { status: 202, message: `Compose (id=${id}) has been canceled` };
  }
  if (!isAdmin(principal)) throw new OdcsError(403, `User ${name} is not in role admins.`);
  const current = (await store.findCompose(deps.db, id))!;
  if (current.state !== 'done' && current.state !== 'failed') {
    throw new OdcsError(400, `Compose (id=${id}) can not be removed, its state need to be in ['done', 'failed'].`);
  }
  await store.updateCompose(deps.db, id, { timeToExpire: now(), removedBy: name });
  deps.composes.sweepSoon();
  return { status: 202, message: `The delete request for compose (id=${id}) has been accepted and will be processed by backend later.` };
}

async function list(ctx: Context, deps: ApiDeps, principal: Principal): Promise<unknown> {
  const q = ctx.query;
  const one = (k: string) => (Array.isArray(q[k]) ? (q[k] as string[])[0] : q[k] as string | undefined);
  const filters: Record<string, string> = {};
  for (const k of FILTERS) {
    const v = one(k);
    if (v === undefined) continue;
    if (k === 'state') {
      const byCode = Object.entries(STATE_CODES).find(([, code]) => String(code) === v)?.[0];
      const state = byCode ?? v;
      if (!(state in STATE_CODES)) throw new OdcsError(400, `unknown state "${v}"`);
      filters.state = state;
    } else filters[k] = v;
  }
  const orderText = one('order_by') ?? '-id';
  const orderBy = orderText.replace(/^-/, '');
  if (!ORDER_KEYS.includes(orderBy)) throw new OdcsError(400, `An invalid order_by key was suplied, allowed keys are: ${ORDER_KEYS.join(', ')}`);
  const page = Number(one('page') ?? '1');
  const perPage = Number(one('per_page') ?? '10');
  if (!Number.isInteger(page) || page < 1 || !Number.isInteger(perPage) || perPage < 1 || perPage > 100) throw new OdcsError(400, 'page must be >= 1 and per_page 1-100');
  const visibleTo = isAdmin(principal) ? null
    : { owner: principal.kind === 'user' ? principal.user.name : '', repoIds: (await readableRepos(deps.db, principal)).map((r: Repo) => r.id) };
  const { items, total } = await store.queryComposes(deps.db, { filters, orderBy, descending: orderText.startsWith('-'),
    offset: (page - 1) * perPage, limit: perPage, visibleTo });
  const pages = Math.max(1, Math.ceil(total / perPage));
  const link = (n: number) => {
    const u = new URL(`${ODCS_PREFIX}composes/`, deps.publicUrl());
    for (const [k, v] of Object.entries(q)) if (typeof v === 'string' && k !== 'page') u.searchParams.set(k, v);
    u.searchParams.set('page', String(n));
    u.searchParams.set('per_page', String(perPage));
    return u.toString();
  };
  return { items: items.map((c) => composeJson(deps.publicUrl(), c)),
    meta: { first: link(1), last: link(pages), next: page < pages ? link(page + 1) : null, prev: page > 1 ? link(page - 1) : null,
      page, pages, per_page: perPage, total } };
}

/** `/composes/odcs-N/…`: a done compose's files, for those who may see compose N. */
export async function serveComposeFiles(ctx: Context, deps: ApiDeps): Promise<void> {
  const { segments, trailing } = treePath(ctx, COMPOSES_PREFIX);
  const m = /^odcs-(\d{1,15})$/.exec(segments[0] ?? '');
  if (!m) throw new CairnError('not_found', 'no such compose');
  const principal = await principalFromHeader(deps.db, deps.signingKey, ctx.get('authorization') || undefined);
  const c = await store.findCompose(deps.db, Number(m[1]));
  // Files are served for a done compose, or a removed one whose files a done reuser still names.
  const served = c && (c.state === 'done' || (await store.reusersOf(deps.db, c.id)).some((r) => r.state === 'done'));
  if (!c || !served || !(await canSee(deps, principal, c))) {
    throw principal.kind === 'anonymous' ? new CairnError('unauthenticated', 'sign in to see this compose', { 'WWW-Authenticate': 'Basic realm="cairn"' })
      : new CairnError('not_found', 'no such compose');
  }
  serveTree(ctx, path.join(deps.config.composesDir, segments[0]), segments.slice(1), `/composes/${segments.join('/')}`, trailing);
}
