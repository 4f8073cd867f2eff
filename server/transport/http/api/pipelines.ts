import fs from 'node:fs';
import { PassThrough } from 'node:stream';
import { CairnError } from '../../../errors';
import { inTransaction, now } from '../../../db';
import * as store from '../../../store';
import type { Repo, Run } from '../../../store';
import { principalName, requireRepoRole } from '../../../auth';
import type { Principal } from '../../../auth';
import { repoPath, resolveRef } from '../../../git';
import { cancelQueuedRun, Definition, definitionProblem, definitionSchema, queueRun, runLogPath } from '../../../pipelines';
import type { ApiDeps, ApiRequest, JsonSchema, Route } from './route';
import * as s from './schemas';
import { pageParams, pageResponse } from './paging';
import { composeRefusal } from '../odcs';

const time: JsonSchema = { type: ['string', 'null'], format: 'date-time' };
const stateEnum = ['queued', 'running', 'succeeded', 'failed', 'cancelled'];
const runSchema: JsonSchema = { type: 'object', additionalProperties: false,
  required: ['id', 'repo', 'ref', 'commit', 'release', 'trigger', 'state', 'created_at', 'started_at', 'finished_at', 'stages'],
  properties: { id: { type: 'integer' }, repo: { type: 'string' }, ref: { type: 'string' }, commit: { type: 'string', pattern: '^[0-9a-f]{40}$' },
    release: { type: 'string' }, trigger: { type: 'string', enum: ['push', 'manual', 'schedule', 'upstream', 'repo_created'] },
    state: { type: 'string', enum: stateEnum }, reason: { type: ['string', 'null'] }, attempt: { type: 'integer' },
    cancel_requested: { type: 'boolean' }, created_at: time, started_at: time, finished_at: time,
    stages: { type: 'array', items: { type: 'object', additionalProperties: false, required: ['name', 'state', 'started_at', 'finished_at'],
      properties: { name: { type: 'string' }, state: { type: 'string', enum: stateEnum }, started_at: time, finished_at: time } } },
    adjust: { type: ['object', 'null'] }, upstream: { type: ['object', 'null'] }, build_date: { type: ['string', 'null'] },
    artifacts_url: { type: ['string', 'null'] }, log_url: { type: 'string' } } };

function toApiRun(deps: ApiDeps, repo: Repo, r: Run) {
  const name = `${repo.tenantName}/${repo.name}`;
  return { id: r.id, repo: name, ref: r.ref, commit: r.commit, release: r.release, trigger: r.trigger, state: r.state, reason: r.reason,
    attempt: r.attempt, cancel_requested: r.cancelRequested, created_at: r.createdAt, started_at: r.startedAt, finished_at: r.finishedAt,
    stages: r.stages, adjust: r.adjust, build_date: r.buildDate,
    upstream: r.upstream ? { repo: r.upstream.repo, release: r.upstream.release, build_date: r.upstream.build_date } : null,
    artifacts_url: r.buildDate && ['succeeded', 'failed'].includes(r.state) ? `${deps.publicUrl()}/artifacts/${name}/${r.release}/${r.buildDate}/` : null,
    log_url: `${deps.publicUrl()}/api/v1/runs/${r.id}/log` };
}

/** A run and its repository, when the caller may see it at `needed`; otherwise 404 (or 403 for a reader asking to write). */
async function requireRun(deps: ApiDeps, principal: Principal, id: string, needed: 'read' | 'write'): Promise<{ run: Run; repo: Repo }> {
  const run = /^\d{1,15}$/.test(id) ? await store.findRun(deps.db, Number(id)) : null;
  const repo = run ? await store.findRepoById(deps.db, run.repoId) : null;
  if (!run || !repo) throw new CairnError('not_found', `no run ${id}`);
  await requireRepoRole(deps.db, principal, repo.tenantName, repo.name, needed);
  return { run, repo };
}

async function requirePipeline(deps: ApiDeps, repo: Repo): Promise<Definition> {
  const p = await store.findPipeline(deps.db, repo.id);
  if (!p) throw new CairnError('not_found', `${repo.tenantName}/${repo.name} has no pipeline`);
  return p.definition as Definition;
}

const FOLLOW_POLL_MS = 250;

/** The log as it grows, until its run ends: read from the file, so any replica can serve it. */
function followLog(req: ApiRequest, runId: number, file: string): PassThrough {
  const out = new PassThrough();
  let offset = 0; let closed = false;
  req.ctx.req.socket.setTimeout(0);
  req.ctx.req.on('close', () => { closed = true; out.end(); });
  const pump = async () => {
    for (;;) {
      if (closed) return;
      const run = await store.findRun(req.deps.db, runId);
      const ended = !run || !['queued', 'running'].includes(run.state);
      try {
        const size = fs.statSync(file).size;
        if (size > offset) {
          await new Promise<void>((resolve, reject) => fs.createReadStream(file, { start: offset, end: size - 1 })
            .on('data', (b) => out.write(b)).on('end', resolve).on('error', reject));
          offset = size;
        }
      } catch { /* not written yet */ }
      if (ended) { out.end(); return; }
      await new Promise((r) => setTimeout(r, FOLLOW_POLL_MS));
    }
  };
  pump().catch((err) => { req.deps.log.error({ err }, 'log stream failed'); out.end(); });
  return out;
}

const repoParams = '/repos/{tenant}/{repo}';

export const pipelineRoutes: Route[] = [
  {
    method: 'put', path: `${repoParams}/pipeline`, summary: 'Set the repository\'s pipeline (JSON, or YAML as application/yaml); checked on save',
    access: 'repo admins', body: definitionSchema, yaml: true,
    responses: { 200: { description: 'the saved definition', schema: definitionSchema },
      403: { description: 'not a repo admin, or (with `compose`) not allowed to create build composes', schema: s.error } },
    handler: async ({ params, body, principal, deps }) => {
      const { repo } = await requireRepoRole(deps.db, principal, params.tenant, params.repo, 'admin');
      const def = body as Definition;
      const problem = definitionProblem(def);
      if (problem) throw new CairnError('invalid_field', problem);
      // The composes a pipeline makes are its saver's: only someone who may create build composes may ask for them.
      const refusal = def.compose ? await composeRefusal(deps, principal, 'build') : null;
      if (refusal) throw new CairnError('forbidden', `compose: ${refusal}`);
      const upstreams: store.UpstreamLink[] = [];
      for (const [i, u] of (def.triggers.upstream ?? []).entries()) {
        const [tenant, name] = u.repo.split('/');
        // The same answer for a repo that does not exist and one the caller cannot see.
        const up = await requireRepoRole(deps.db, principal, tenant, name, 'read').catch(() => null);
        if (!up) throw new CairnError('invalid_field', `triggers.upstream.${i}.repo: no repository ${u.repo}`);
        upstreams.push({ upstreamRepoId: up.repo.id, release: u.release, ref: u.ref ?? null });
      }
      await inTransaction(deps.db, (trx) => store.savePipeline(trx, repo.id, def, upstreams, now(), principalName(principal)));
      return { status: 200, body: def };
    },
  },
  {
    method: 'get', path: `${repoParams}/pipeline`, summary: "The repository's pipeline definition", access: 'read',
    responses: { 200: { description: 'the definition', schema: definitionSchema } },
    handler: async ({ params, principal, deps }) => {
      const { repo } = await requireRepoRole(deps.db, principal, params.tenant, params.repo, 'read');
      return { status: 200, body: await requirePipeline(deps, repo) };
    },
  },
  {
    method: 'post', path: `${repoParams}/runs`, summary: 'Start a run of a ref now (a manual trigger); folds into the run already waiting for that release',
    access: 'write', body: { type: 'object', additionalProperties: false, required: ['ref'], properties: { ref: { type: 'string', minLength: 1, maxLength: 255 } } },
    responses: { 201: { description: 'a new queued run', schema: runSchema }, 200: { description: 'the waiting run this request joined', schema: runSchema } },
    handler: async ({ params, body, principal, deps }) => {
      const { repo } = await requireRepoRole(deps.db, principal, params.tenant, params.repo, 'write');
      const def = await requirePipeline(deps, repo);
      if (def.triggers.manual === false) throw new CairnError('invalid_field', 'this pipeline has manual runs switched off (triggers.manual)');
      const found = await resolveRef(deps.gitEnv, repoPath(deps.config.reposDir, repo.tenantName, repo.name), body.ref);
      if (!found) throw new CairnError('invalid_field', `ref: ${body.ref} is not a branch or tag of ${repo.tenantName}/${repo.name}`);
      const target = { ref: found.ref, commit: found.commit };
      const { run, coalesced } = await inTransaction(deps.db, (trx) => queueRun(trx, repo.id, def, { ...target, trigger: 'manual' }));
      deps.pipelines.wake();
      return { status: coalesced ? 200 : 201, body: toApiRun(deps, repo, run) };
    },
  },
  {
    method: 'get', path: `${repoParams}/runs`, summary: "A repository's runs, oldest first (?state= to filter)", access: 'read', paged: true,
    responses: { 200: { description: 'runs', schema: s.list(runSchema) } },
    handler: async (req) => {
      const { repo } = await requireRepoRole(req.deps.db, req.principal, req.params.tenant, req.params.repo, 'read');
      const state = typeof req.query.state === 'string' ? req.query.state : undefined;
      if (state !== undefined && !stateEnum.includes(state)) throw new CairnError('invalid_field', `state must be one of ${stateEnum.join(', ')}`);
      const { limit, after } = pageParams(req);
      const runs = await store.listRuns(req.deps.db, repo.id, after, limit + 1, state);
      return pageResponse(req, runs, limit, (r) => r.id, (r) => toApiRun(req.deps, repo, r));
    },
  },
  {
    method: 'get', path: '/runs/{id}', summary: 'One run, with its stages', access: 'read on its repository',
    responses: { 200: { description: 'the run', schema: runSchema } },
    handler: async ({ params, principal, deps }) => {
      const { run, repo } = await requireRun(deps, principal, params.id, 'read');
      return { status: 200, body: toApiRun(deps, repo, run) };
    },
  },
  {
    method: 'get', path: '/runs/{id}/log', summary: "A run's log as text; ?follow=true streams it until the run ends",
    access: 'read on its repository',
    responses: { 200: { description: 'the log (text/plain)' } },
    handler: async (req) => {
      const { run } = await requireRun(req.deps, req.principal, req.params.id, 'read');
      const file = runLogPath(req.deps.config.dataDir, run.id);
      req.ctx.type = 'text/plain; charset=utf-8';
      if (req.query.follow === 'true' || req.query.follow === '1') {
        req.ctx.set('Cache-Control', 'no-cache');
        req.ctx.set('X-Accel-Buffering', 'no');
        return { status: 200, body: followLog(req, run.id, file) };
      }
      return { status: 200, body: fs.existsSync(file) ? fs.createReadStream(file) : '' };
    },
  },
  {
    method: 'post', path: '/runs/{id}/cancel', summary: 'Cancel a queued or running run (its whole process group is killed)',
    access: 'write on its repository',
    responses: { 200: { description: 'the run: cancelled, or running with cancel_requested until its processes are gone', schema: runSchema },
      409: { description: 'the run has already ended', schema: s.error } },
    handler: async ({ params, principal, deps }) => {
      const { run, repo } = await requireRun(deps, principal, params.id, 'write');
      if (!['queued', 'running'].includes(run.state)) throw new CairnError('conflict', `run ${run.id} has already ${run.state === 'cancelled' ? 'been cancelled' : run.state}`);
      await store.requestCancel(deps.db, run.id);
      deps.pipelines.cancel(run.id);
      await cancelQueuedRun(deps.db, run.id);
      // A running run ends as its processes die: answer once it has, if that is quick.
      for (let i = 0; i < 40; i++) {
        const current = (await store.findRun(deps.db, run.id))!;
        if (current.state !== 'running') return { status: 200, body: toApiRun(deps, repo, current) };
        await new Promise((r) => setTimeout(r, 100));
      }
      return { status: 200, body: toApiRun(deps, repo, (await store.findRun(deps.db, run.id))!) };
    },
  },
];
