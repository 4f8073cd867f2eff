import Router from '@koa/router';
import Ajv, { ErrorObject } from 'ajv';
import getRawBody from 'raw-body';
import type { Context } from 'koa';
import { CairnError } from '../../../errors';
import { principalFromHeader } from '../../../auth';
import type { ApiDeps, ApiRequest, JsonSchema, Route } from './route';
import * as schemas from './schemas';
import { tenantRoutes } from './tenants';
import { userRoutes } from './users';
import { repoRoutes } from './repos';
import { keyRoutesAll } from './keys';
import { eventRoutes } from './events';
import { webhookRoutesAll } from './webhooks';
import { pipelineRoutes } from './pipelines';
import YAML from 'yaml';

export type { ApiDeps } from './route';

export const API_PREFIX = '/api/v1';
const MAX_JSON_BYTES = 1024 * 1024;

export const routes: Route[] = [...tenantRoutes, ...userRoutes, ...repoRoutes, ...keyRoutesAll, ...eventRoutes, ...webhookRoutesAll, ...pipelineRoutes];

const ajv = new Ajv({ allErrors: false, strict: false });

function describe(e: ErrorObject): string {
  const field = e.instancePath ? e.instancePath.slice(1).replace(/\//g, '.') : 'body';
  const within = e.instancePath ? `${field}.` : '';
  if (e.keyword === 'additionalProperties') return `unknown field "${within}${(e.params as { additionalProperty: string }).additionalProperty}"`;
  if (e.keyword === 'required') return `missing field "${within}${(e.params as { missingProperty: string }).missingProperty}"`;
  if (e.keyword === 'pattern' && /name$/.test(field)) return `${field} must be 1-64 characters of A-Z a-z 0-9 . _ -, starting with a letter or digit`;
  return `${field} ${e.message}`;
}

/** The body as JSON whatever its Content-Type says (as GitHub's API does: `curl -d` sends a form type), or YAML when it says so. */
async function readJson(ctx: Context, schema: JsonSchema): Promise<unknown> {
  const declared = Number(ctx.get('content-length') || 0);
  if (declared > MAX_JSON_BYTES) throw new CairnError('body_too_large', `request body over ${MAX_JSON_BYTES} bytes`);
  let raw: string;
  try {
    raw = await getRawBody(ctx.req, { limit: MAX_JSON_BYTES, encoding: 'utf8' });
  } catch (err) {
    if ((err as { type?: string }).type === 'entity.too.large') throw new CairnError('body_too_large', `request body over ${MAX_JSON_BYTES} bytes`);
    throw new CairnError('malformed_request', 'could not read the request body');
  }
  // A route whose fields are all optional may be called with no body at all.
  if (raw.trim() === '' && ((schema.required as string[] | undefined) ?? []).length === 0) return {};
  let body: unknown;
  if (/^(application|text)\/(x-)?yaml\b/.test(ctx.get('content-type'))) {
    try { body = YAML.parse(raw, { maxAliasCount: 100 }); } catch (err) { throw new CairnError('malformed_request', `request body is not valid YAML: ${(err as Error).message.split('\n')[0]}`); }
  } else {
    try { body = JSON.parse(raw); } catch { throw new CairnError('malformed_request', 'request body is not valid JSON'); }
  }
  const validate = ajv.compile(schema);
  if (!validate(body)) throw new CairnError('invalid_field', describe(validate.errors![0]));
  return body;
}

/** The API's router: every route of the table above, with authentication, body validation and paging. */
export function apiRouter(deps: ApiDeps): Router {
  const router = new Router({ prefix: API_PREFIX });
  router.get('/openapi.json', (ctx) => { ctx.body = openApiDocument(deps.publicUrl()); });
  for (const route of routes) {
    const koaPath = route.path.replace(/\{(\w+)\}/g, ':$1');
    router[route.method](koaPath, async (ctx) => {
      const principal = await principalFromHeader(deps.db, deps.signingKey, ctx.get('authorization') || undefined);
      const body = route.body ? await readJson(ctx, route.body) : undefined;
      const req: ApiRequest = { params: ctx.params as Record<string, string>, query: ctx.query, body, principal, deps, ctx };
      const res = await route.handler(req);
      ctx.status = res.status;
      if (res.headers) ctx.set(res.headers);
      if (res.body !== undefined) ctx.body = res.body;
    });
  }
  return router;
}

/** The OpenAPI 3.1 document, written from the same route table that serves requests. */
export function openApiDocument(serverUrl: string): Record<string, unknown> {
  const paths: Record<string, Record<string, unknown>> = {};
  for (const r of routes) {
    const params = [...r.path.matchAll(/\{(\w+)\}/g)].map((m) => ({ name: m[1], in: 'path', required: true, schema: { type: 'string' } }));
    if (r.paged) {
      params.push({ name: 'limit', in: 'query', required: false, schema: { type: 'integer', minimum: 1, maximum: 1000 } } as never);
      params.push({ name: 'after', in: 'query', required: false, schema: { type: 'string' } });
    }
    const responses: Record<string, unknown> = {};
    for (const [status, resp] of Object.entries(r.responses)) {
      responses[status] = resp.schema ? { description: resp.description, content: { 'application/json': { schema: resp.schema } } }
        : { description: resp.description };
    }
    for (const [status, description] of [['401', 'no or bad credentials'], ['404', 'missing, or invisible to the caller'],
      ['422', 'well-formed but invalid']] as const) {
      responses[status] ??= { description, content: { 'application/json': { schema: schemas.error } } };
    }
    (paths[r.path] ??= {})[r.method] = {
      summary: r.summary, description: `Access: ${r.access}.`, operationId: `${r.method}${r.path.replace(/[{}]/g, '').replace(/\/(\w)/g, (_, c: string) => c.toUpperCase()).replace(/[^A-Za-z]/g, '')}`,
      parameters: params,
      ...(r.body ? { requestBody: { required: true, content: { 'application/json': { schema: r.body },
        ...(r.yaml ? { 'application/yaml': { schema: r.body } } : {}) } } } : {}),
      responses,
    };
  }
  return {
    openapi: '3.1.0',
    info: { title: 'Cairn', version: '1', description: 'Git hosting for build systems: history is never rewritten.' },
    servers: [{ url: `${serverUrl}${API_PREFIX}` }],
    security: [{ bearer: [] }, {}],
    components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer', bearerFormat: 'JWT' } } },
    paths,
  };
}
