import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import knex from 'knex';
import path from 'node:path';
import { commit, git, must, processesWith, startTestServer, TestServer, tmpDir, waitFor, workTree } from '../harness';

// A duration no other process has, so a build's sleep can be told apart from any other.
const SLEEP = 3000 + Math.floor(Math.random() * 6000);

describe('pipelines across a server kill', () => {
  let server: TestServer;
  const scratch = tmpDir('cairn-restart-');
  const gate = path.join(scratch, 'gate');
  // No sandbox here: bubblewrap's commands die with the server (--die-with-parent); this tests what kills them otherwise.
  before(async () => { server = await startTestServer({ CAIRN_WORKERS: '1', CAIRN_BUILD_SANDBOX: 'none' }); });
  after(() => server.stop());

  const runs = async (repo: string) => (await server.api('GET', `/api/v1/repos/${repo}/runs`, undefined, server.adminToken)).body as any[];

  it('a run executing at SIGKILL is failed with the reason and queued once more; queued runs go on; events are not doubled', async () => {
    for (const name of ['one', 'two']) {
      await server.repo('acme', name);
      const def = { triggers: { push: ['refs/heads/main'] },
        build: { run: `sleep ${SLEEP} & while [ ! -e ${JSON.stringify(gate)} ]; do sleep 0.05; done; echo done > "$CAIRN_OUTPUT_DIR/x"` } };
      assert.equal((await server.api('PUT', `/api/v1/repos/acme/${name}/pipeline`, def, server.adminToken)).status, 200);
    }
    const one = await workTree(server.url('acme/one', { user: 'admin', token: server.adminToken }));
    const two = await workTree(server.url('acme/two', { user: 'admin', token: server.adminToken }));
    const c1 = await commit(one, 'a', '1\n');
    await must(git(one, 'push', '-q', 'origin', 'main'));
    const running = await waitFor('run of one to start', async () => (await runs('acme/one')).find((r) => r.state === 'running'));
    await waitFor('its command to start', async () => processesWith(`sleep ${SLEEP}`).length > 0);
    await commit(two, 'b', '1\n');
    await must(git(two, 'push', '-q', 'origin', 'main'));
    const waiting = await waitFor('run of two queued behind it (one worker)', async () => (await runs('acme/two')).find((r) => r.state === 'queued'));

    await server.stop('SIGKILL');
    assert.ok(processesWith(`sleep ${SLEEP}`).length > 0, 'the build outlived the killed server');
    fs.writeFileSync(gate, '');
    await server.start();

    await waitFor('the orphaned build to be killed', async () => processesWith(`sleep ${SLEEP}`).length === 0);
    const list = await waitFor('the retry to finish', async () => {
      const l = await runs('acme/one');
      return l.length === 2 && l[1].state === 'succeeded' ? l : null;
    }, 30_000);
    assert.equal(list[0].id, running.id);
    assert.equal(list[0].state, 'failed');
    assert.match(list[0].reason, /server executing this run stopped.*queued again/);
    assert.deepEqual([list[1].commit, list[1].attempt, list[1].trigger], [c1, 2, 'push']);
    const second = await waitFor('the queued run of two to run', async () => {
      const r = (await runs('acme/two')).find((x) => x.id === waiting.id);
      return r.state === 'succeeded' ? r : null;
    }, 30_000);
    assert.equal(second.attempt, 1);

    const events = (await server.api('GET', '/api/v1/events?limit=1000', undefined, server.adminToken)).body as any[];
    const states = (id: number) => events.filter((e) => e.run_id === id && e.event === 'run.state_changed').map((e) => e.state);
    assert.deepEqual(states(running.id), ['queued', 'running', 'failed']);
    assert.deepEqual(states(list[1].id), ['queued', 'running', 'succeeded']);
    assert.deepEqual(states(waiting.id), ['queued', 'running', 'succeeded']);
    assert.equal(events.filter((e) => e.event === 'build.published').length, 2);
    const ids = events.map((e) => e.id);
    assert.equal(new Set(ids).size, ids.length);
  });

  it('a run whose lease another replica took over is stopped where it was running', async () => {
    await server.repo('acme', 'stolen');
    assert.equal((await server.api('PUT', '/api/v1/repos/acme/stolen/pipeline', { triggers: { push: ['refs/heads/main'] },
      build: { run: `sleep ${SLEEP + 1}` } }, server.adminToken)).status, 200);
    const work = await workTree(server.url('acme/stolen', { user: 'admin', token: server.adminToken }));
    await must(git(work, 'push', '-q', 'origin', 'main'));
    const run = await waitFor('the run', async () => (await runs('acme/stolen')).find((r) => r.state === 'running'));
    await waitFor('its command', async () => processesWith(`sleep ${SLEEP + 1}`).length > 0);
    // What another replica does to a run it judged orphaned: fail it, take it off this process's lease.
    const db = server.extraEnv.DATABASE_URL ? knex({ client: 'pg', connection: server.extraEnv.DATABASE_URL })
      : knex({ client: 'sqlite3', connection: { filename: path.join(server.dataDir, 'cairn.sqlite') }, useNullAsDefault: true });
    try {
      await db('runs').where('id', run.id).update({ state: 'failed', reason: 'judged orphaned elsewhere', lease_owner: null });
    } finally { await db.destroy(); }
    await waitFor('the command to be stopped', async () => processesWith(`sleep ${SLEEP + 1}`).length === 0, 15_000);
    const after = (await runs('acme/stolen')).find((r) => r.id === run.id);
    assert.equal(after.state, 'failed', 'the other replica\'s verdict stands');
    assert.equal(after.reason, 'judged orphaned elsewhere');
  });

  it('a push whose server is killed right after it is recorded triggers exactly one run', async () => {
    await server.repo('acme', 'kill');
    assert.equal((await server.api('PUT', '/api/v1/repos/acme/kill/pipeline', { triggers: { push: ['refs/heads/*'] },
      build: { run: 'true' } }, server.adminToken)).status, 200);
    const work = await workTree(server.url('acme/kill', { user: 'admin', token: server.adminToken }));
    const pushed: string[] = [];
    for (let i = 0; i < 4; i++) {
      pushed.push(await commit(work, 'k', `${i}\n`));
      // The port changes with each restart: push to the server's URL of the moment.
      await must(git(work, 'push', '-q', server.url('acme/kill', { user: 'admin', token: server.adminToken }), `HEAD:refs/heads/b${i}`));
      // Killed before, during or after the trigger read the push: whichever, one run per push.
      await new Promise((r) => setTimeout(r, i * 40));
      await server.stop('SIGKILL');
      await server.start();
    }
    // A run the next kill caught executing ends failed and comes back once (attempt 2): a kill of its retry too is final.
    const all = await waitFor('every run to end', async () => {
      const l = await runs('acme/kill');
      return l.length >= 4 && l.every((r) => ['succeeded', 'failed'].includes(r.state)) ? l : null;
    }, 30_000);
    for (const r of all.filter((x) => x.state === 'failed')) assert.match(r.reason, /server executing this run stopped/);
    await new Promise((r) => setTimeout(r, 500));
    const final = await runs('acme/kill');
    assert.deepEqual(final.filter((r) => r.attempt === 1).map((r) => r.ref).sort(), ['refs/heads/b0', 'refs/heads/b1', 'refs/heads/b2', 'refs/heads/b3']);
    assert.deepEqual(final.filter((r) => r.attempt === 1).map((r) => r.commit).sort(), [...pushed].sort());
    assert.ok(all.length <= final.length);
  });
});
