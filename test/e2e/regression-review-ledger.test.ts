import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import knex from 'knex';
import { commit, git, must, run, startTestServer, TestServer, waitFor, workTree } from '../harness';

// Two defects a review reproduced: a push recorded while another process held SQLite's write lock, and a
// push lock left behind by a receive-pack that died while its verdict waited.
describe('regression: the ledger under a busy database and a dying receive-pack', () => {
  let server: TestServer;
  let work: string;
  before(async () => {
    server = await startTestServer();
    await server.repo('acme', 'app');
    work = await workTree(server.url('acme/app', { user: 'admin', token: server.adminToken }));
    await must(git(work, 'push', '-q', 'origin', 'main'));
  });
  after(() => server.stop());

  const verifyOk = async () => {
    const v = await server.cli('admin', 'verify');
    assert.equal(v.code, 0, v.stdout + v.stderr);
  };

  it('records a push made while another process holds the database write lock', async () => {
    const pg = server.extraEnv.DATABASE_URL;
    const db = pg ? knex({ client: 'pg', connection: pg, pool: { min: 1, max: 1 } })
      : knex({ client: 'sqlite3', connection: { filename: path.join(server.dataDir, 'cairn.sqlite') }, useNullAsDefault: true, pool: { min: 1, max: 1 } });
    try {
      await db.raw('CREATE TABLE IF NOT EXISTS test_scratch (x integer)');
      const next = await commit(work, 'busy.txt', 'while the database is busy\n');
      // The moment the push is allowed, another writer takes the database and commits a change: the
      // settling transaction, begun before that commit, must not be lost to SQLITE_BUSY.
      let held: Promise<void> = Promise.resolve();
      const onLog = (b: Buffer) => {
        if (!b.toString().includes('push allowed')) return;
        server.child!.stderr!.off('data', onLog);
        held = (async () => {
          // SQLite: the whole database's write lock. PostgreSQL: the ledger table's, which settling needs.
          await db.raw(pg ? 'BEGIN' : 'BEGIN IMMEDIATE');
          if (pg) await db.raw('LOCK TABLE pushes IN EXCLUSIVE MODE');
          await db.raw('INSERT INTO test_scratch VALUES (1)');
          await new Promise((r) => setTimeout(r, 1000));
          await db.raw('COMMIT');
        })();
      };
      server.child!.stderr!.on('data', onLog);
      const done = await git(work, 'push', 'origin', 'main');
      await held;
      assert.equal(done.code, 0, done.stderr);
      await waitFor('the push to be recorded', async () =>
        (await server.api('GET', '/api/v1/repos/acme/app/pushes', undefined, server.adminToken)).body.at(-1)?.updates[0]?.new === next);
      // The next push must not be judged against a ledger that lost one.
      await commit(work, 'next.txt', 'after\n');
      assert.equal((await git(work, 'push', 'origin', 'main')).code, 0);
    } finally {
      await db.destroy();
    }
    await verifyOk();
  });

  it('gives the push lock back when receive-pack dies while its verdict waits for the lock', async () => {
    const lockFile = path.join(server.repoDir('acme/app'), 'cairn-push.lock');
    // Another live process holds the lock; the push's verdict waits for it.
    fs.writeFileSync(lockFile, JSON.stringify({ host: os.hostname(), pid: process.pid, instance: 'test', since: Date.now() }));
    await commit(work, 'dying.txt', 'its receive-pack is killed\n');
    const push = git(work, 'push', 'origin', 'main');
    const pid = await waitFor('receive-pack to wait in its hook', async () => {
      const r = await run('pgrep', ['-f', `receive-pack --stateless-rpc ${server.repoDir('acme/app')}`]);
      return r.stdout.trim().split('\n').filter(Boolean)[0];
    });
    await new Promise((r) => setTimeout(r, 300));
    process.kill(Number(pid), 'SIGKILL');
    assert.notEqual((await push).code, 0);
    fs.rmSync(lockFile);
    // The verdict now takes the lock, finds its receive-pack gone, settles and gives the lock back.
    await waitFor('the lock to be given back', async () => !fs.existsSync(lockFile), 10_000);
    const next = await commit(work, 'after.txt', 'the next push is not held up\n');
    const started = Date.now();
    const again = await git(work, 'push', 'origin', 'main');
    assert.equal(again.code, 0, again.stderr);
    assert.ok(Date.now() - started < 10_000, 'no 45 s wait for a leaked lock');
    assert.equal((await server.diskRefs('acme/app')).get('refs/heads/main'), next);
    await verifyOk();
  });
});
