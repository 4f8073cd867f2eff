import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { commit, git, must, startTestServer, TestServer, workTree } from '../harness';

/** Reads a Server-Sent Events stream until `want` events have arrived. */
async function readEvents(url: string, headers: Record<string, string>, want: number, timeoutMs = 10_000) {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), timeoutMs);
  const res = await fetch(url, { headers: { accept: 'text/event-stream', ...headers }, signal: controller.signal });
  assert.equal(res.status, 200);
  assert.match(res.headers.get('content-type') ?? '', /text\/event-stream/);
  const events: { id: number; event: string; data: any }[] = [];
  const decoder = new TextDecoder();
  let buffer = '';
  try {
    for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
      buffer += decoder.decode(chunk, { stream: true });
      let end;
      while ((end = buffer.indexOf('\n\n')) >= 0) {
        const block = buffer.slice(0, end); buffer = buffer.slice(end + 2);
        const field = (name: string) => block.split('\n').find((l) => l.startsWith(`${name}: `))?.slice(name.length + 2);
        if (field('data')) events.push({ id: Number(field('id')), event: field('event')!, data: JSON.parse(field('data')!) });
      }
      if (events.length >= want) break;
    }
  } finally {
    clearTimeout(timer);
    controller.abort();
  }
  return events;
}

describe('events: the outbox, paged and streamed', () => {
  let server: TestServer;
  let alice: string;
  let work: string;
  before(async () => {
    server = await startTestServer();
    alice = await server.user('alice');
    await server.repo('acme', 'app');
    await server.repo('acme', 'secret');
    await server.api('PUT', '/api/v1/repos/acme/app/members/alice', { role: 'write' }, server.adminToken);
    work = await workTree(server.url('acme/app', { user: 'alice', token: alice }));
    await must(git(work, 'push', '-q', 'origin', 'main'));
  });
  after(() => server.stop());

  it('records repo creation and every accepted push, with the contract\'s fields and a per-repo sequence', async () => {
    const r = await server.api('GET', '/api/v1/events?repo=acme/app', undefined, alice);
    assert.equal(r.status, 200);
    assert.deepEqual(r.body.map((e: { event: string; seq: number }) => [e.event, e.seq]), [['repo.created', 1], ['push', 2]]);
    const push = r.body[1];
    assert.equal(push.repo, 'acme/app');
    assert.equal(push.user, 'alice');
    assert.equal(push.transport, 'http');
    assert.deepEqual(push.updates.map((u: { ref: string }) => u.ref), ['refs/heads/main']);
    assert.match(push.at, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
    const ledger = await server.api('GET', '/api/v1/repos/acme/app/pushes', undefined, alice);
    assert.equal(push.push_id, ledger.body[0].id);
  });

  it('shows each caller only the repositories they can read', async () => {
    const mine = await server.api('GET', '/api/v1/events', undefined, alice);
    assert.ok(mine.body.every((e: { repo: string }) => e.repo === 'acme/app'), JSON.stringify(mine.body));
    const all = await server.api('GET', '/api/v1/events', undefined, server.adminToken);
    assert.ok(all.body.some((e: { repo: string }) => e.repo === 'acme/secret'));
    assert.equal((await server.api('GET', '/api/v1/events?repo=acme/secret', undefined, alice)).status, 404);
    const anonymous = await server.api('GET', '/api/v1/events');
    assert.deepEqual(anonymous.body, [], 'no public repos, no events');
  });

  it('a refused push makes no event', async () => {
    const before = (await server.api('GET', '/api/v1/events?repo=acme/app', undefined, alice)).body.length;
    assert.notEqual((await git(work, 'push', 'origin', ':refs/heads/main')).code, 0);
    assert.equal((await server.api('GET', '/api/v1/events?repo=acme/app', undefined, alice)).body.length, before);
  });

  it('pages with ?after= so a consumer catches up from where it stopped', async () => {
    for (let i = 0; i < 3; i++) { await commit(work, `f${i}.txt`, `${i}\n`); await must(git(work, 'push', '-q', 'origin', 'main')); }
    const first = await server.api('GET', '/api/v1/events?repo=acme/app&limit=2', undefined, alice);
    assert.equal(first.body.length, 2);
    const next = /<([^>]+)>; rel="next"/.exec(first.headers.get('link') ?? '')?.[1];
    assert.ok(next);
    const rest = await server.api('GET', `/api/v1/events?repo=acme/app&after=${first.body[1].id}`, undefined, alice);
    assert.deepEqual(rest.body.map((e: { seq: number }) => e.seq), [3, 4, 5]);
  });

  it('streams new events live, and resumes after Last-Event-ID', async () => {
    const headers = { authorization: `Bearer ${alice}` };
    const all = (await server.api('GET', '/api/v1/events?repo=acme/app', undefined, alice)).body;
    const lastSeen = all[all.length - 1].id;
    const live = readEvents(`${server.base}/api/v1/events?repo=acme/app`, { ...headers, 'last-event-id': String(lastSeen) }, 1);
    await new Promise((r) => setTimeout(r, 300));
    const id = await commit(work, 'live.txt', 'live\n');
    await must(git(work, 'push', '-q', 'origin', 'main'));
    const got = await live;
    assert.equal(got[0].event, 'push');
    assert.equal(got[0].data.updates[0].new, id);
    assert.ok(got[0].id > lastSeen);
    const resumed = await readEvents(`${server.base}/api/v1/events?repo=acme/app`, { ...headers, 'last-event-id': String(all[1].id) }, 4);
    assert.deepEqual(resumed.map((e) => e.data.seq), [3, 4, 5, 6], 'exactly what came after the last one seen');
  });
});
