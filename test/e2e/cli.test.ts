import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import knex from 'knex';
import { commit, git, must, startTestServer, TEST_PG, TestServer, workTree } from '../harness';

describe('cairn admin, without a running server', () => {
  let server: TestServer;
  before(async () => {
    server = await startTestServer();
    await server.repo('acme', 'app');
    const w = await workTree(server.url('acme/app', { user: 'admin', token: server.adminToken }));
    await commit(w, 'a.txt', 'a\n');
    await must(git(w, 'tag', 'v1'));
    await must(git(w, 'push', '-q', 'origin', 'main', 'v1'));
    await commit(w, 'b.txt', 'b\n');
    await must(git(w, 'push', '-q', 'origin', 'main'));
    await server.stop();
  });
  after(() => server.stop());

  it('create-user and token print only their result on stdout, and the token works', async () => {
    const created = await server.cli('admin', 'create-user', 'carol', '--admin');
    assert.equal(created.code, 0, created.stderr);
    assert.equal(created.stdout, 'carol\n');
    const token = await server.cli('admin', 'token', 'carol');
    assert.equal(token.code, 0, token.stderr);
    assert.match(token.stdout, /^[\w-]+\.[\w-]+\.[\w-]+\n$/);
    await server.start();
    const me = await server.api('GET', '/api/v1/user', undefined, token.stdout.trim());
    assert.equal(me.status, 200);
    assert.deepEqual([me.body.name, me.body.admin], ['carol', true]);
    await server.stop();
  });

  it('refuses bad names, duplicates and unknown users with a one-line error and a non-zero exit', async () => {
    for (const [args, message] of [[['create-user', '../x'], /name/], [['create-user', 'CAROL'], /already exists/],
      [['token', 'nobody'], /not found/], [['token', 'carol', '--expires-in', '-1'], /expires_in/]] as const) {
      const r = await server.cli('admin', ...args);
      assert.notEqual(r.code, 0, args.join(' '));
      assert.equal(r.stdout, '');
      assert.match(r.stderr, message);
    }
  });

  it('keeps its keys dir 0700 and the signing key 0600', () => {
    assert.equal(fs.statSync(server.keysDir).mode & 0o777, 0o700);
    assert.equal(fs.statSync(path.join(server.keysDir, 'token-signing.key')).mode & 0o777, 0o600);
    if (!TEST_PG) assert.equal(fs.statSync(path.join(server.dataDir, 'cairn.sqlite')).mode & 0o077, 0, 'the SQLite file is the server user\'s alone');
  });

  it('verify says ok for an intact ledger (positive control)', async () => {
    const r = await server.cli('admin', 'verify');
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.equal(r.stdout, 'ok\n');
  });

  it('verify reports a ref moved on disk behind the server\'s back', async () => {
    const dir = server.repoDir('acme/app');
    const main = (await must(git(dir, 'rev-parse', 'refs/heads/main'))).stdout.trim();
    const parent = (await must(git(dir, 'rev-parse', 'refs/heads/main~1'))).stdout.trim();
    await must(git(dir, 'update-ref', 'refs/heads/main', parent));
    await must(git(dir, 'update-ref', 'refs/heads/planted', parent));
    await must(git(dir, 'update-ref', 'refs/notes/planted', parent));
    const r = await server.cli('admin', 'verify');
    assert.equal(r.code, 1);
    assert.match(r.stdout, new RegExp(`acme/app: refs/heads/main: ledger ends at ${main}, disk has ${parent}`));
    assert.match(r.stdout, /acme\/app: refs\/heads\/planted: on disk .* never recorded/);
    assert.match(r.stdout, /acme\/app: refs\/notes\/planted: on disk .* never recorded/, 'refs outside heads and tags count too');
    await must(git(dir, 'update-ref', 'refs/heads/main', main));
    await must(git(dir, 'update-ref', '-d', 'refs/heads/planted'));
    await must(git(dir, 'update-ref', '-d', 'refs/notes/planted'));
  });

  it('verify reports an edited or removed ledger record', async () => {
    const db = server.extraEnv.DATABASE_URL ? knex({ client: 'pg', connection: server.extraEnv.DATABASE_URL })
      : knex({ client: 'sqlite3', connection: { filename: path.join(server.dataDir, 'cairn.sqlite') }, useNullAsDefault: true });
    try {
      await db('pushes').where({ seq: 1 }).update({ user_name: 'mallory' });
      const edited = await server.cli('admin', 'verify');
      assert.equal(edited.code, 1);
      assert.match(edited.stdout, /acme\/app: push \d+ \(seq 1\): hash does not match its content/);
      await db('pushes').where({ seq: 1 }).update({ user_name: 'admin' });
      assert.equal((await server.cli('admin', 'verify')).code, 0);
      await db('pushes').where({ seq: 1 }).update({ state: 'void' });
      const removed = await server.cli('admin', 'verify');
      assert.equal(removed.code, 1);
      assert.match(removed.stdout, /sequence 2, expected 1|prev_hash does not match/);
    } finally {
      await db.destroy();
    }
  });

  it('fails clearly on a bad configuration', async () => {
    const r = await server.cli('admin', 'verify', '--database-url', 'mysql://x');
    assert.equal(r.code, 2);
    assert.match(r.stderr, /DATABASE_URL must be a postgres/);
  });
});
