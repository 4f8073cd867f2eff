import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import knex, { Knex } from 'knex';
import { commit, git, must, startTestServer, TestServer, tmpDir, waitFor, workTree } from '../harness';
import { archiveToken, freePort, repour } from './archive-helpers';

type Received = { method: string; body: any };

/** A callback receiver whose answers the test decides, request by request. */
async function receiver(answer: (n: number) => number) {
  const got: Received[] = [];
  const server = http.createServer((req, res) => {
    let body = '';
    req.on('data', (c) => { body += c; });
    req.on('end', () => { got.push({ method: req.method!, body: JSON.parse(body) }); res.statusCode = answer(got.length); res.end(); });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { got, url: `http://127.0.0.1:${(server.address() as net.AddressInfo).port}/cb`, close: () => { server.closeAllConnections(); server.close(); } };
}

const alive = (pid: number): boolean => { try { process.kill(pid, 0); return true; } catch { return false; } };

describe('archive: callback mode, retries, restarts, cancel (issue 5 point 4)', () => {
  let server: TestServer; let token: string; let port: number; let waitDir: string; let db: Knex;
  const originUrl = () => `http://127.0.0.1:${port}/upstream/lib.git`;
  const internal = () => ({ readwrite: `${server.base}/archive/lib.git`, readonly: `${server.base}/archive/lib.git` });

  before(async () => {
    waitDir = tmpDir('cairn-wait-');
    // An adjuster that starts a child and waits for the test's go: so a test can cancel or kill mid-task.
    const script = path.join(waitDir, 'wait.sh');
    fs.writeFileSync(script, '#!/bin/sh\necho $$ >> "$1/pids"\nsleep 300 &\necho $! >> "$1/pids"\n' +
      'while [ ! -f "$1/go" ]; do sleep 0.05; done\nkill $! 2>/dev/null\necho waited > waited.txt\n', { mode: 0o755 });
    port = await freePort();
    server = await startTestServer({ CAIRN_HTTP_PORT: String(port), CAIRN_ARCHIVE_ALLOWED_ORIGINS: `http://127.0.0.1:${port}/upstream/`,
      // No sandbox: these tests watch the adjuster's processes by pid from outside (a pid namespace would hide them).
      CAIRN_BUILD_SANDBOX: 'none', CAIRN_ARCHIVE_CALLBACK_RETRY_BASE_MS: '10', CAIRN_ARCHIVE_ADJUSTERS: JSON.stringify({ MVN: 'echo x >> README', WAIT: `${script} ${waitDir}` }) });
    token = await archiveToken(server);
    await server.repo('upstream', 'lib', { public: true });
    const up = await workTree(server.url('upstream/lib', { user: 'admin', token: server.adminToken }));
    await commit(up, 'README', 'lib\n');
    await must(git(up, 'push', '-q', 'origin', 'main'));
    db = server.extraEnv.DATABASE_URL ? knex({ client: 'pg', connection: server.extraEnv.DATABASE_URL })
      : knex({ client: 'sqlite3', connection: { filename: path.join(server.dataDir, 'cairn.sqlite') }, useNullAsDefault: true });
  });
  after(async () => { fs.writeFileSync(path.join(waitDir, 'go'), ''); await db.destroy(); await server.stop(); });

  const call = (endpoint: string, body: Record<string, unknown>) => repour(server, token, endpoint, body);
  const task = async (id: string) => db('archive_tasks').where('id', id).first();

  it('answers 202 with a 48-character id at once, then sends the result with {status, id} (POST, or PUT when asked)', async () => {
    const rx = await receiver(() => 200);
    const r = await call('pull', { name: 'lib', type: 'git', url: originUrl(), ref: 'main', callback: { url: rx.url } });
    assert.equal(r.status, 202);
    assert.deepEqual(Object.keys(r.body), ['callback']);
    assert.match(r.body.callback.id, /^[A-Z2-7]{48}$/);
    await waitFor('the callback', async () => rx.got.length > 0);
    const [got] = rx.got;
    assert.equal(got.method, 'POST');
    assert.deepEqual(got.body.callback, { status: 200, id: r.body.callback.id });
    assert.match(got.body.tag, /^repour-[0-9a-f]{40}$/);
    const sync = await call('pull', { name: 'lib', type: 'git', url: originUrl(), ref: 'main' });
    assert.deepEqual({ ...got.body, callback: undefined }, { ...sync.body, callback: undefined }, 'the same body as a synchronous answer');
    const put = await call('internal-scm', { project: 'other', owner_groups: [], callback: { url: rx.url, method: 'PUT' } });
    assert.equal(put.status, 202);
    await waitFor('the PUT', async () => rx.got.length > 1);
    assert.equal(rx.got[1].method, 'PUT');
    assert.equal(rx.got[1].body.status, 'SUCCESS_CREATED');
    assert.deepEqual(rx.got[1].body.callback, { status: 200, id: put.body.callback.id });
    rx.close();
  });

  it('sends a processing error with its status, and works for /adjust and /clone too', async () => {
    const rx = await receiver(() => 200);
    const bad = await call('pull', { name: 'lib', type: 'git', url: originUrl(), ref: 'nope', callback: { url: rx.url } });
    const adj = await call('adjust', { ref: 'main', internal_url: internal(), originRepoUrl: originUrl(), sync: true, buildType: 'MVN', callback: { url: rx.url } });
    const cl = await call('clone', { type: 'git', ref: 'main', originRepoUrl: originUrl(), targetRepoUrl: `${server.base}/archive/copy.git`, callback: { url: rx.url } });
    for (const r of [bad, adj, cl]) assert.equal(r.status, 202);
    await waitFor('three callbacks', async () => rx.got.length >= 3);
    const byId = new Map(rx.got.map((g) => [g.body.callback.id, g.body]));
    assert.equal(byId.get(bad.body.callback.id).callback.status, 400);
    assert.equal(byId.get(bad.body.callback.id).exit_code, 10);
    assert.equal(byId.get(adj.body.callback.id).callback.status, 200);
    assert.match(byId.get(adj.body.callback.id).tag, /^repour-/);
    assert.equal(byId.get(cl.body.callback.id).targetRepoUrl, `${server.base}/archive/copy.git`);
    rx.close();
  });

  it('sends a 200 to positiveCallback and anything else to negativeCallback', async () => {
    const pos = await receiver(() => 200); const neg = await receiver(() => 200);
    const split = { positiveCallback: { url: pos.url }, negativeCallback: { url: neg.url, method: 'PUT' } };
    const good = await call('adjust', { ref: 'main', internal_url: internal(), originRepoUrl: originUrl(), sync: true, buildType: 'MVN', ...split });
    const bad = await call('adjust', { ref: 'nope', internal_url: internal(), buildType: 'MVN', ...split });
    assert.deepEqual([good.status, bad.status], [202, 202]);
    await waitFor('both callbacks', async () => pos.got.length > 0 && neg.got.length > 0);
    assert.deepEqual(pos.got.map((g) => [g.method, g.body.callback.id, g.body.callback.status]), [['POST', good.body.callback.id, 200]]);
    assert.deepEqual(neg.got.map((g) => [g.method, g.body.callback.id, g.body.callback.status]), [['PUT', bad.body.callback.id, 400]]);
    pos.close(); neg.close();
  });

  it('retries a failing receiver with backoff, the same id each time, 9 sends at most', async () => {
    const flaky = await receiver((n) => (n <= 3 ? 503 : 200));
    const r = await call('internal-scm', { project: 'flaky', owner_groups: [], callback: { url: flaky.url } });
    await waitFor('the 4th send to succeed', async () => (await task(r.body.callback.id))?.callback_state === 'delivered');
    assert.equal(flaky.got.length, 4);
    assert.ok(flaky.got.every((g) => g.body.callback.id === r.body.callback.id));
    const down = await receiver(() => 500);
    const d = await call('internal-scm', { project: 'down', owner_groups: [], callback: { url: down.url } });
    await waitFor('the sends to be used up', async () => (await task(d.body.callback.id))?.callback_state === 'failed', 20_000);
    assert.equal(down.got.length, 9);
    flaky.close(); down.close();
  });

  it('survives a restart: a task killed mid-run runs again, a callback not yet delivered is sent after', async () => {
    const rx = await receiver(() => 200);
    const r = await call('adjust', { ref: 'main', internal_url: internal(), originRepoUrl: originUrl(), sync: true, buildType: 'WAIT', callback: { url: rx.url } });
    await waitFor('the adjuster to start', async () => fs.existsSync(path.join(waitDir, 'pids')));
    await server.stop('SIGKILL');
    // An undeliverable callback queued while the server is down.
    const closed = await freePort();
    await db('archive_tasks').insert({ id: 'B'.repeat(48), task_id: null, endpoint: 'internal-scm', request: '{}', user_id: 1, user_name: 'admin',
      state: 'done', cancel_requested: false, result_status: 200, result_body: '{"status":"SUCCESS_ALREADY_EXISTS"}',
      callback_url: `http://127.0.0.1:${closed}/cb`, callback_method: 'POST', callback_state: 'pending', callback_attempts: 0,
      callback_next_at: new Date().toISOString(), created_at: new Date().toISOString() });
    fs.writeFileSync(path.join(waitDir, 'go'), '');
    await server.start();
    await waitFor('the callback of the task that was killed', async () => rx.got.length > 0, 20_000);
    assert.equal(rx.got[0].body.callback.id, r.body.callback.id);
    assert.equal(rx.got[0].body.callback.status, 200);
    assert.match(rx.got[0].body.tag, /^repour-/);
    await waitFor('the queued callback to be tried after the restart', async () => (await task('B'.repeat(48))).callback_attempts > 0);
    fs.rmSync(path.join(waitDir, 'go'));
    fs.rmSync(path.join(waitDir, 'pids'));
    rx.close();
  });

  it('cancels a running task by its taskId: its processes end and no callback is sent; an unknown id is 400', async () => {
    const rx = await receiver(() => 200);
    const r = await call('adjust', { ref: 'main', internal_url: internal(), originRepoUrl: originUrl(), sync: true, buildType: 'WAIT', taskId: 'build-42', callback: { url: rx.url } });
    await waitFor('the adjuster and its child', async () => fs.existsSync(path.join(waitDir, 'pids')) &&
      fs.readFileSync(path.join(waitDir, 'pids'), 'utf8').trim().split('\n').length >= 2);
    const pids = fs.readFileSync(path.join(waitDir, 'pids'), 'utf8').trim().split('\n').map(Number);
    assert.ok(pids.every(alive));
    const c = await repour(server, token, 'cancel/build-42', '');
    assert.deepEqual([c.status, c.body], [200, [{ message: 'Tasks with task_id: build-42 cancelled' }]]);
    await waitFor('the adjuster and its child to be gone', async () => !pids.some(alive));
    await waitFor('the task to be cancelled', async () => (await task(r.body.callback.id)).state === 'cancelled');
    // A later task's callback arrives; the cancelled one's never does.
    const later = await call('internal-scm', { project: 'after-cancel', owner_groups: [], callback: { url: rx.url } });
    await waitFor('the later callback', async () => rx.got.some((g) => g.body.callback.id === later.body.callback.id));
    assert.ok(!rx.got.some((g) => g.body.callback.id === r.body.callback.id));
    assert.equal((await task(r.body.callback.id)).callback_state, 'none');
    const unknown = await repour(server, token, 'cancel/no-such-task', '');
    assert.deepEqual([unknown.status, unknown.body], [400, [{ error_message: 'task id no-such-task not found!' }]]);
    const again = await repour(server, token, 'cancel/build-42', '');
    assert.equal(again.status, 400, 'a finished task is not cancelled twice');
    fs.rmSync(path.join(waitDir, 'pids'));
    rx.close();
  });

  it('cancels a synchronous request too: it is answered, and its processes end', async () => {
    const pending = call('adjust', { ref: 'main', internal_url: internal(), originRepoUrl: originUrl(), sync: true, buildType: 'WAIT', taskId: 'sync-7' });
    await waitFor('the adjuster and its child', async () => fs.existsSync(path.join(waitDir, 'pids')) &&
      fs.readFileSync(path.join(waitDir, 'pids'), 'utf8').trim().split('\n').length >= 2);
    const pids = fs.readFileSync(path.join(waitDir, 'pids'), 'utf8').trim().split('\n').map(Number);
    assert.equal((await repour(server, token, 'cancel/sync-7', '')).status, 200);
    const r = await pending;
    assert.equal(r.status, 400);
    assert.equal(r.body.error_type, 'Cancelled');
    await waitFor('the processes to be gone', async () => !pids.some(alive));
    fs.rmSync(path.join(waitDir, 'pids'));
  });

  it('a cancel sent to another replica stops the task where it runs (the flags live in the database)', async () => {
    assert.ok(!fs.existsSync(path.join(waitDir, 'pids')));
    const replica = new TestServer(server.dataDir, server.keysDir, { ...server.extraEnv, CAIRN_HTTP_PORT: '0' });
    await replica.start();
    const rx = await receiver(() => 200);
    try {
      const r = await call('adjust', { ref: 'main', internal_url: internal(), originRepoUrl: originUrl(), sync: true, buildType: 'WAIT',
        taskId: 'across', callback: { url: rx.url } });
      await waitFor('the adjuster and its child', async () => fs.existsSync(path.join(waitDir, 'pids')) &&
        fs.readFileSync(path.join(waitDir, 'pids'), 'utf8').trim().split('\n').length >= 2);
      const pids = fs.readFileSync(path.join(waitDir, 'pids'), 'utf8').trim().split('\n').map(Number);
      const runner = Number(String((await task(r.body.callback.id)).lease_owner).split(':').pop());
      const other = runner === server.child!.pid ? replica : server;
      assert.ok(pids.every(alive), 'running when the cancel is sent');
      const c = await repour(other, token, 'cancel/across', '');
      assert.equal(c.status, 200);
      await waitFor('the processes on the other replica to be gone', async () => !pids.some(alive));
      await waitFor('the task to be cancelled', async () => (await task(r.body.callback.id)).state === 'cancelled');
      assert.equal(rx.got.length, 0);
    } finally {
      rx.close();
      fs.rmSync(path.join(waitDir, 'pids'), { force: true });
      await replica.stop();
    }
  });
});
