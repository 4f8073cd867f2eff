import { PassThrough } from 'node:stream';
import { CairnError } from '../../../errors';
import * as store from '../../../store';
import type { Repo } from '../../../store';
import { isAdmin, readableRepos, requireRepoRole } from '../../../auth';
import { toEventPayload } from '../../../events';
import type { ApiRequest, Route } from './route';
import * as s from './schemas';
import { pageParams, pageResponse } from './paging';

const POLL_MS = 500;
const KEEPALIVE_MS = 15_000;

type Visible = { repos: Map<number, Repo>; all: boolean };

/** The repositories whose events the caller may see (one, with ?repo=TENANT/REPO), by id; `all` for an admin. */
async function visibleRepos(req: ApiRequest): Promise<Visible> {
  const only = typeof req.query.repo === 'string' ? req.query.repo : undefined;
  if (only !== undefined) {
    const [tenant, repo, extra] = only.split('/');
    if (!tenant || !repo || extra !== undefined) throw new CairnError('invalid_field', 'repo must be TENANT/REPO');
    const { repo: r } = await requireRepoRole(req.deps.db, req.principal, tenant, repo, 'read');
    return { repos: new Map([[r.id, r]]), all: false };
  }
  return { repos: new Map((await readableRepos(req.deps.db, req.principal)).map((r) => [r.id, r])), all: isAdmin(req.principal) };
}

const repoIds = (v: Visible): number[] | null => (v.all ? null : [...v.repos.keys()]);

const payload = (e: store.StoredEvent, v: Visible) => {
  const r = v.repos.get(e.repoId)!;
  return toEventPayload(e, `${r.tenantName}/${r.name}`);
};

/**
 * Server-Sent Events: what was missed since Last-Event-ID (or ?after), then each new event as it is
 * committed. It reads the outbox table, not memory, so any replica serves it and a restart loses nothing.
 */
function eventStream(req: ApiRequest, visible: Visible, after: number): PassThrough {
  const out = new PassThrough();
  let cursor = after;
  let closed = false;
  let lastWrite = Date.now();
  req.ctx.req.socket.setTimeout(0);
  req.ctx.req.on('close', () => { closed = true; out.end(); });
  const tick = async () => {
    while (!closed) {
      const batch = await store.listEvents(req.deps.db, repoIds(visible), cursor, 500);
      for (const e of batch) {
        // An admin sees repositories made after the stream began; anyone else's set is fixed at connect.
        if (!visible.repos.has(e.repoId)) {
          const repo = await store.findRepoById(req.deps.db, e.repoId);
          if (!repo) continue;
          visible.repos.set(repo.id, repo);
        }
        out.write(`id: ${e.id}\nevent: ${e.type}\ndata: ${JSON.stringify(payload(e, visible))}\n\n`);
        cursor = e.id;
        lastWrite = Date.now();
      }
      if (batch.length === 500) continue;
      if (Date.now() - lastWrite > KEEPALIVE_MS) { out.write(': keepalive\n\n'); lastWrite = Date.now(); }
      await new Promise((r) => setTimeout(r, POLL_MS));
    }
  };
  out.write(': cairn events\n\n');
  tick().catch((err) => { req.deps.log.error({ err }, 'event stream failed'); out.end(); });
  return out;
}

export const eventRoutes: Route[] = [
  {
    method: 'get', path: '/events',
    summary: 'Events of the repositories the caller can read, oldest first (?repo=TENANT/REPO for one); with Accept: text/event-stream, a live stream that resumes from Last-Event-ID',
    access: 'anyone; each sees the events of the repositories they can read', paged: true,
    responses: { 200: { description: 'events after the cursor (the `id` of the last one seen)', schema: s.list(s.event) } },
    handler: async (req) => {
      const visible = await visibleRepos(req);
      if ((req.ctx.get('accept') ?? '').includes('text/event-stream')) {
        const lastId = req.ctx.get('last-event-id');
        const after = /^\d{1,15}$/.test(lastId) ? Number(lastId) : pageParams(req).after;
        req.ctx.set('Cache-Control', 'no-cache');
        req.ctx.set('X-Accel-Buffering', 'no');
        req.ctx.type = 'text/event-stream';
        return { status: 200, body: eventStream(req, visible, after) };
      }
      const { limit, after } = pageParams(req);
      const events = await store.listEvents(req.deps.db, repoIds(visible), after, limit + 1);
      return pageResponse(req, events, limit, (e) => e.id, (e) => payload(e, visible));
    },
  },
];
