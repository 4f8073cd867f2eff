import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import zlib from 'node:zlib';
import { commit, git, gitEnvRun, must, startTestServer, TestServer, tmpDir, workTree } from '../harness';
import { FLUSH, pkt } from '../../server/git';

describe('smart HTTP with the real git client', () => {
  let server: TestServer;
  let alice: string; let reader: string;
  let work: string;
  let first: string; let second: string;
  before(async () => {
    server = await startTestServer();
    alice = await server.user('alice');
    reader = await server.user('reader');
    await server.repo('acme', 'app');
    await server.api('PUT', '/api/v1/repos/acme/app/members/alice', { role: 'write' }, server.adminToken);
    await server.api('PUT', '/api/v1/repos/acme/app/members/reader', { role: 'read' }, server.adminToken);
    work = await workTree(server.url('acme/app', { user: 'alice', token: alice }));
    first = await commit(work, 'a.txt', 'one\n');
    await must(git(work, 'tag', '-a', 'v1', '-m', 'release 1'));
    second = await commit(work, 'big/b.txt', 'two\n'.repeat(1000));
    await must(git(work, 'tag', 'v2'));
  });
  after(() => server.stop());

  it('pushes branches and tags with Basic auth (user + token), and records the push', async () => {
    const push = await git(work, 'push', 'origin', 'main', 'v1', 'v2');
    assert.equal(push.code, 0, push.stderr);
    const refs = await server.diskRefs('acme/app');
    assert.equal(refs.get('refs/heads/main'), second);
    const pushes = await server.api('GET', '/api/v1/repos/acme/app/pushes', undefined, alice);
    assert.equal(pushes.body.length, 1);
    assert.equal(pushes.body[0].user, 'alice');
    assert.equal(pushes.body[0].transport, 'http');
    assert.deepEqual(pushes.body[0].updates.map((u: { ref: string }) => u.ref).sort(), ['refs/heads/main', 'refs/tags/v1', 'refs/tags/v2']);
    const api = await server.api('GET', '/api/v1/repos/acme/app/refs', undefined, alice);
    assert.deepEqual(api.body.branches, [{ name: 'main', commit: second }]);
    assert.deepEqual(api.body.tags, [{ name: 'v1', commit: first }, { name: 'v2', commit: second }], 'annotated tag peeled');
  });

  for (const version of ['2', '0']) {
    it(`makes shallow and partial clones over protocol v${version}`, async () => {
      const dir = tmpDir();
      const url = server.url('acme/app', { user: 'reader', token: reader });
      assert.equal((await git(dir, '-c', `protocol.version=${version}`, 'clone', '-q', '--depth', '1', '--branch', 'v2', url, 's')).code, 0);
      const partial = await git(dir, '-c', `protocol.version=${version}`, 'clone', '-q', '--filter=blob:none', url, 'p');
      assert.equal(partial.code, 0, partial.stderr);
    });

    it(`clones and fetches over protocol v${version}`, async () => {
      const dir = tmpDir();
      const clone = await git(dir, '-c', `protocol.version=${version}`, 'clone', '-q', server.url('acme/app', { user: 'reader', token: reader }), 'c');
      assert.equal(clone.code, 0, clone.stderr);
      assert.equal((await git(`${dir}/c`, 'rev-parse', 'HEAD')).stdout.trim(), (await git(work, 'rev-parse', 'HEAD')).stdout.trim());
      const next = await commit(work, 'c.txt', `v${version}\n`);
      assert.equal((await git(work, 'push', '-q', 'origin', 'main')).code, 0);
      const fetch = await git(`${dir}/c`, '-c', `protocol.version=${version}`, 'fetch', '-q', 'origin');
      assert.equal(fetch.code, 0, fetch.stderr);
      assert.equal((await git(`${dir}/c`, 'rev-parse', 'origin/main')).stdout.trim(), next);
    });
  }

  it('shows v2 is really spoken (the server answers ls-refs)', async () => {
    const r = await gitEnvRun(work, { GIT_TRACE_PACKET: '1' }, '-c', 'protocol.version=2', 'ls-remote', 'origin', 'refs/tags/v1');
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /version 2/);
    assert.match(r.stderr, /command=ls-refs/);
  });

  it('makes a shallow clone of one tag, and a blobless partial clone', async () => {
    const dir = tmpDir();
    const url = server.url('acme/app', { user: 'reader', token: reader });
    const shallow = await git(dir, 'clone', '-q', '--depth', '1', '--branch', 'v1', url, 's');
    assert.equal(shallow.code, 0, shallow.stderr);
    assert.equal((await git(`${dir}/s`, 'rev-parse', 'HEAD')).stdout.trim(), first);
    assert.equal((await git(`${dir}/s`, 'rev-list', '--count', 'HEAD')).stdout.trim(), '1');
    const partial = await git(dir, 'clone', '-q', '--filter=blob:none', '--no-checkout', url, 'p');
    assert.equal(partial.code, 0, partial.stderr);
    const missing = await git(`${dir}/p`, 'rev-list', '--objects', '--missing=print', 'HEAD');
    assert.match(missing.stdout, /^\?[0-9a-f]{40}$/m, 'blobs were left out');
  });

  it('accepts gzip-compressed request bodies', async () => {
    const body = Buffer.concat([pkt('command=ls-refs\n'), pkt('object-format=sha1\n'), Buffer.from('0001'), pkt('peel\n'),
      pkt('ref-prefix refs/tags/\n'), FLUSH]);
    const res = await fetch(`${server.base}/acme/app.git/git-upload-pack`, {
      method: 'POST', body: zlib.gzipSync(body),
      headers: { 'content-type': 'application/x-git-upload-pack-request', 'content-encoding': 'gzip', 'git-protocol': 'version=2',
        authorization: `Basic ${Buffer.from(`reader:${reader}`).toString('base64')}` },
    });
    assert.equal(res.status, 200);
    const text = await res.text();
    assert.match(text, new RegExp(`${first} refs/tags/v1|refs/tags/v1 peeled:${first}`));
  });

  it('does not tell a private repo from a missing one: anonymous gets 401 for both, a stranger 404 for both', async () => {
    const stranger = await server.user('stranger');
    const status = async (repo: string, auth?: string) => (await fetch(`${server.base}/${repo}.git/info/refs?service=git-upload-pack`,
      { headers: auth ? { authorization: `Basic ${Buffer.from(auth).toString('base64')}` } : {} }));
    const [anonPrivate, anonMissing] = [await status('acme/app'), await status('acme/missing')];
    assert.equal(anonPrivate.status, 401);
    assert.equal(anonMissing.status, 401);
    assert.equal(anonPrivate.headers.get('www-authenticate'), anonMissing.headers.get('www-authenticate'));
    assert.deepEqual(await anonPrivate.text(), await anonMissing.text());
    const [strPrivate, strMissing] = [await status('acme/app', `stranger:${stranger}`), await status('acme/missing', `stranger:${stranger}`)];
    assert.equal(strPrivate.status, 404);
    assert.equal(strMissing.status, 404);
    assert.deepEqual((await strPrivate.text()).replace('acme/app', 'X'), (await strMissing.text()).replace('acme/missing', 'X'));
    const clone = await git(tmpDir(), 'clone', server.url('acme/app'));
    assert.notEqual(clone.code, 0);
  });

  it('lets anyone clone a public repo, but refuses anonymous pushes', async () => {
    await server.repo('acme', 'pub', { public: true });
    const w = await workTree(server.url('acme/pub', { user: 'admin', token: server.adminToken }));
    assert.equal((await git(w, 'push', '-q', 'origin', 'main')).code, 0);
    const dir = tmpDir();
    assert.equal((await git(dir, 'clone', '-q', server.url('acme/pub'), 'c')).code, 0);
    await must(git(`${dir}/c`, 'commit', '-q', '--allow-empty', '-m', 'anon'));
    const push = await git(`${dir}/c`, 'push', 'origin', 'main');
    assert.notEqual(push.code, 0);
    assert.match(push.stderr, /Authentication failed|could not read Username|401/);
    const res = await fetch(`${server.base}/acme/pub.git/info/refs?service=git-receive-pack`);
    assert.equal(res.status, 401);
  });

  it('refuses a push with a read grant (403) and with a bad token (401); nothing changes', async () => {
    const before = await server.diskRefs('acme/app');
    const dir = tmpDir();
    await must(git(dir, 'clone', '-q', server.url('acme/app', { user: 'reader', token: reader }), 'c'));
    await must(git(`${dir}/c`, 'commit', '-q', '--allow-empty', '-m', 'nope'));
    const push = await git(`${dir}/c`, 'push', 'origin', 'main');
    assert.notEqual(push.code, 0);
    assert.match(push.stderr, /403/);
    assert.match(push.stderr, /write access to acme\/app is required/, 'the reason reaches the git user');
    const wrongUser = await git(`${dir}/c`, 'push', server.url('acme/app', { user: 'reader', token: alice }), 'main');
    assert.notEqual(wrongUser.code, 0, 'a token only works with its own user name');
    assert.match(wrongUser.stderr, /Authentication failed|401/);
    const revoked = await server.api('POST', '/api/v1/users/reader/tokens', { expires_in: 600 }, reader);
    await server.api('DELETE', `/api/v1/users/reader/tokens/${revoked.body.id}`, undefined, reader);
    for (const bad of [revoked.body.token, 'garbage', `${reader}x`]) {
      const r = await git(tmpDir(), 'clone', server.url('acme/app', { user: 'reader', token: bad }), 'x');
      assert.notEqual(r.code, 0);
      assert.match(r.stderr, /Authentication failed|401/);
    }
    assert.deepEqual(await server.diskRefs('acme/app'), before);
  });

  it('answers garbage bodies with 400 and a clear message, and keeps serving', async () => {
    const basic = `Basic ${Buffer.from(`alice:${alice}`).toString('base64')}`;
    for (const service of ['git-upload-pack', 'git-receive-pack']) {
      for (const body of [Buffer.from('this is not a pkt-line'), Buffer.from('00'), Buffer.from('ffffgarbage'), Buffer.alloc(0)]) {
        const res = await fetch(`${server.base}/acme/app.git/${service}`, {
          method: 'POST', body, headers: { 'content-type': `application/x-${service}-request`, authorization: basic } });
        assert.equal(res.status, 400, `${service} ${JSON.stringify(body.toString())}`);
        assert.match(res.headers.get('content-type') ?? '', /^text\/plain/, 'git shows text/plain errors to its user');
        assert.match(await res.text(), /pkt-line|push|request/);
      }
      const gz = await fetch(`${server.base}/acme/app.git/${service}`, { method: 'POST', body: Buffer.from('not gzip'),
        headers: { 'content-type': `application/x-${service}-request`, 'content-encoding': 'gzip', authorization: basic } });
      assert.equal(gz.status, 400, `${service} bad gzip`);
    }
    const wrongType = await fetch(`${server.base}/acme/app.git/git-upload-pack`, { method: 'POST', body: '0000',
      headers: { authorization: basic } });
    assert.equal(wrongType.status, 415);
    const dumb = await fetch(`${server.base}/acme/app.git/info/refs`, { headers: { authorization: basic } });
    assert.equal(dumb.status, 400);
    assert.equal((await git(tmpDir(), 'clone', '-q', server.url('acme/app', { user: 'alice', token: alice }), 'ok')).code, 0);
    assert.equal((await git(server.repoDir('acme/app'), 'fsck', '--strict')).code, 0);
  });

  it('takes a push larger than git\'s post buffer (chunked, after a probe request)', async () => {
    const big = await commit(work, 'big.bin', crypto.randomBytes(3 * 1024 * 1024).toString('base64'));
    const push = await git(work, 'push', 'origin', 'main');
    assert.equal(push.code, 0, push.stderr);
    assert.equal((await server.diskRefs('acme/app')).get('refs/heads/main'), big);
  });

  it('refuses a pack that is not a pack, and changes nothing', async () => {
    const before = await server.diskRefs('acme/app');
    const basic = `Basic ${Buffer.from(`alice:${alice}`).toString('base64')}`;
    const body = Buffer.concat([pkt(`${second} ${'1'.repeat(40)} refs/heads/main\0report-status\n`), FLUSH, Buffer.from('PACKgarbage')]);
    const res = await fetch(`${server.base}/acme/app.git/git-receive-pack`, { method: 'POST', body,
      headers: { 'content-type': 'application/x-git-receive-pack-request', authorization: basic } });
    const text = await res.text();
    assert.match(text, /unpack (?!ok)/);
    assert.deepEqual(await server.diskRefs('acme/app'), before);
  });
});
