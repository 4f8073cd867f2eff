import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import knex from 'knex';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import { commit, git, must, startTestServer, TestServer, waitFor, workTree } from '../harness';

type Received = { headers: http.IncomingHttpHeaders; body: string };

/** A real local receiver; `answer` decides each response (status, or a promise to hold the request open). */
async function receiver(answer: (r: Received, n: number) => number | Promise<number>) {
  const got: Received[] = [];
  const server = http.createServer((req, res) => {
    let body = '';
    req.on('data', (c) => { body += c; });
    req.on('end', async () => {
      const r = { headers: req.headers, body };
      got.push(r);
      res.statusCode = await answer(r, got.length);
      res.end('thanks');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { got, url: `http://127.0.0.1:${(server.address() as net.AddressInfo).port}/hook`, close: () => server.close() };
}

/** Standard Webhooks verification, written from the spec, independent of Cairn's code. */
function verify(secret: string, r: Received): boolean {
  const expected = crypto.createHmac('sha256', Buffer.from(secret, 'utf8'))
    .update(`${r.headers['webhook-id']}.${r.headers['webhook-timestamp']}.${r.body}`).digest('base64');
  return String(r.headers['webhook-signature']).split(' ').some((s) => s === `v1,${expected}`);
}

describe('webhooks', () => {
  let server: TestServer;
  let work: string;
  const secret = 'a-long-shared-secret';
  before(async () => {
    server = await startTestServer({ CAIRN_WEBHOOK_RETRY_BASE_MS: '50' });
    await server.repo('acme', 'app');
    await server.repo('acme', 'lib');
    work = await workTree(server.url('acme/app', { user: 'admin', token: server.adminToken }));
  });
  after(() => server.stop());

  const deliveries = async (scope: string, id: number) =>
    (await server.api('GET', `/api/v1/${scope}/webhooks/${id}/deliveries`, undefined, server.adminToken)).body;

  it('sends each push, signed the Standard Webhooks way, and never stores the secret in plain text', async () => {
    const rx = await receiver(() => 200);
    const hook = await server.api('POST', '/api/v1/repos/acme/app/webhooks', { url: rx.url, secret, events: ['push'] }, server.adminToken);
    assert.equal(hook.status, 201);
    assert.ok(!JSON.stringify(hook.body).includes(secret));
    const id = await commit(work, 'a.txt', 'a\n');
    await must(git(work, 'push', '-q', 'origin', 'main'));
    await waitFor('the delivery', async () => rx.got.length > 0);
    const r = rx.got[0];
    const body = JSON.parse(r.body);
    assert.deepEqual([body.event, body.repo, body.user, body.transport, body.updates[0].new], ['push', 'acme/app', 'admin', 'http', id]);
    assert.equal(r.headers['webhook-id'], `evt_${body.id}`);
    assert.ok(Math.abs(Number(r.headers['webhook-timestamp']) - Date.now() / 1000) < 60);
    assert.ok(verify(secret, r), 'the signature verifies');
    assert.ok(!verify(secret, { ...r, body: r.body.replace('admin', 'mallory') }), 'a forged body does not');
    const db = server.extraEnv.DATABASE_URL ? knex({ client: 'pg', connection: server.extraEnv.DATABASE_URL })
      : knex({ client: 'sqlite3', connection: { filename: path.join(server.dataDir, 'cairn.sqlite') }, useNullAsDefault: true });
    try {
      const rows = await db('webhooks').select('*');
      assert.ok(rows.length > 0 && !JSON.stringify(rows).includes(secret), 'the secret is sealed in the database');
    } finally { await db.destroy(); }
    await waitFor('the log to show success', async () => (await deliveries('repos/acme/app', hook.body.id))[0]?.state === 'succeeded');
    const [d] = await deliveries('repos/acme/app', hook.body.id);
    assert.equal(d.attempts_log[0].status, 200);
    assert.equal(d.attempts_log[0].response_excerpt, 'thanks');
    assert.equal(typeof d.attempts_log[0].duration_ms, 'number');
    rx.close();
  });

  it('retries a failing receiver with backoff until it answers, logging every attempt', async () => {
    const rx = await receiver((_r, n) => (n < 3 ? 500 : 204));
    const hook = await server.api('POST', '/api/v1/repos/acme/app/webhooks', { url: rx.url, secret }, server.adminToken);
    await commit(work, 'b.txt', 'b\n');
    await must(git(work, 'push', '-q', 'origin', 'main'));
    await waitFor('three attempts', async () => (await deliveries('repos/acme/app', hook.body.id))[0]?.state === 'succeeded');
    const [d] = await deliveries('repos/acme/app', hook.body.id);
    assert.deepEqual(d.attempts_log.map((a: { status: number }) => a.status), [500, 500, 204]);
    assert.equal(new Set(rx.got.map((r) => r.headers['webhook-id'])).size, 1, 'the same id on every retry, for de-duplication');
    rx.close();
  });

  it('never holds up a push: the push finishes while the receiver still sits on the delivery', async () => {
    let release!: () => void;
    const held = new Promise<number>((resolve) => { release = () => resolve(200); });
    const rx = await receiver(() => held);
    const hook = await server.api('POST', '/api/v1/repos/acme/app/webhooks', { url: rx.url, secret }, server.adminToken);
    await commit(work, 'c.txt', 'c\n');
    await must(git(work, 'push', '-q', 'origin', 'main'));
    await waitFor('the held delivery', async () => rx.got.length > 0);
    await commit(work, 'd.txt', 'd\n');
    const second = await git(work, 'push', '-q', 'origin', 'main');
    assert.equal(second.code, 0, 'pushes go on while the receiver hangs');
    assert.equal((await deliveries('repos/acme/app', hook.body.id)).filter((d: { state: string }) => d.state === 'succeeded').length, 0);
    release();
    await waitFor('both delivered', async () =>
      (await deliveries('repos/acme/app', hook.body.id)).filter((d: { state: string }) => d.state === 'succeeded').length === 2);
    rx.close();
  });

  it('logs an unreachable receiver\'s failures, redelivers on request, and stops when deleted', async () => {
    const port = await new Promise<number>((resolve) => { const s = net.createServer(); s.listen(0, '127.0.0.1', () => { const p = (s.address() as net.AddressInfo).port; s.close(() => resolve(p)); }); });
    const hook = await server.api('POST', '/api/v1/repos/acme/app/webhooks', { url: `http://127.0.0.1:${port}/x`, secret }, server.adminToken);
    await commit(work, 'e.txt', 'e\n');
    await must(git(work, 'push', '-q', 'origin', 'main'));
    await waitFor('failed attempts', async () => ((await deliveries('repos/acme/app', hook.body.id))[0]?.attempts_log.length ?? 0) >= 2);
    const [d] = await deliveries('repos/acme/app', hook.body.id);
    assert.match(d.attempts_log[0].error, /fetch failed|ECONNREFUSED/);
    assert.equal(d.attempts_log[0].status, null);
    const again = await server.api('POST', `/api/v1/repos/acme/app/webhooks/${hook.body.id}/deliveries/${d.id}/redeliver`, undefined, server.adminToken);
    assert.equal(again.status, 202);
    assert.equal((await server.api('DELETE', `/api/v1/repos/acme/app/webhooks/${hook.body.id}`, undefined, server.adminToken)).status, 204);
    assert.deepEqual((await server.api('GET', '/api/v1/repos/acme/app/webhooks', undefined, server.adminToken)).body
      .filter((h: { id: number }) => h.id === hook.body.id), []);
  });

  it('a tenant webhook hears every repo of the tenant; bad definitions are refused', async () => {
    const rx = await receiver(() => 200);
    const hook = await server.api('POST', '/api/v1/tenants/acme/webhooks', { url: rx.url, secret, events: ['repo.created'] }, server.adminToken);
    assert.equal(hook.status, 201);
    await server.repo('acme', 'newer');
    await waitFor('repo.created', async () => rx.got.some((r) => JSON.parse(r.body).repo === 'acme/newer'));
    for (const bad of [{ url: 'ftp://x', secret }, { url: rx.url, secret: 'short' }, { url: rx.url, secret, events: ['nope'] },
      { url: rx.url, secret, colour: 'red' }]) {
      assert.equal((await server.api('POST', '/api/v1/repos/acme/app/webhooks', bad, server.adminToken)).status, 422, JSON.stringify(bad));
    }
    const alice = await server.user('alice');
    assert.equal((await server.api('POST', '/api/v1/repos/acme/app/webhooks', { url: rx.url, secret }, alice)).status, 404);
    rx.close();
  });

  it('queues each event once per webhook across a SIGKILL, and delivers all of them after restart', async () => {
    // The first delivery is held open, so the kill lands while it is being sent (its lease still running).
    const rx = await receiver((_r, n) => (n === 1 ? new Promise<number>(() => undefined) : 200));
    const hook = await server.api('POST', '/api/v1/repos/acme/lib/webhooks', { url: rx.url, secret, events: ['push'] }, server.adminToken);
    const w = await workTree(server.url('acme/lib', { user: 'admin', token: server.adminToken }));
    for (let i = 0; i < 4; i++) { await commit(w, `k${i}.txt`, `${i}\n`); await must(git(w, 'push', '-q', 'origin', 'main')); }
    await waitFor('a delivery in flight', async () => rx.got.length > 0);
    await server.stop('SIGKILL');
    await server.start();
    const pushes = (await server.api('GET', '/api/v1/repos/acme/lib/pushes', undefined, server.adminToken)).body.length;
    await waitFor('every push delivered', async () => (await deliveries('repos/acme/lib', hook.body.id)).length === pushes &&
      (await deliveries('repos/acme/lib', hook.body.id)).every((d: { state: string }) => d.state === 'succeeded'));
    const ids = new Set(rx.got.map((r) => r.headers['webhook-id']));
    assert.equal(ids.size, pushes, 'the receiver saw every event');
    rx.close();
  });
});
