import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import knex from 'knex';
import { commit, git, must, run, startTestServer, TestServer, tmpDir, workTree } from '../harness';
import { archiveToken, freePort, originServer, repour, tarball, zipball } from './archive-helpers';

describe('archive: /repour/pull (issue 5 point 1, bad input)', () => {
  let server: TestServer; let token: string; let port: number; let closedPort: number;
  let origin: { url: string; close(): void }; let files: string; let upstream: string; let mainTree: string;
  const gitUrl = (repo: string) => `http://127.0.0.1:${port}/upstream/${repo}.git`;
  const admin = () => ({ user: 'admin', token: server.adminToken });

  before(async () => {
    files = tmpDir('cairn-origin-files-');
    origin = await originServer(files);
    port = await freePort(); closedPort = await freePort();
    server = await startTestServer({ CAIRN_HTTP_PORT: String(port), CAIRN_ARCHIVE_FETCH_TIMEOUT_S: '3', CAIRN_ARCHIVE_MAX_BYTES: '300000',
      CAIRN_ARCHIVE_MAX_ENTRIES: '40',
      CAIRN_ARCHIVE_ALLOWED_ORIGINS: `http://127.0.0.1:${port}/upstream/,${origin.url}/,http://127.0.0.1:${closedPort}/` });
    token = await archiveToken(server);
    for (const r of ['app', 'fork', 'big']) await server.repo('upstream', r, { public: true });
    // The upstream: an executable, a symlink, an ignored-but-committed file, and attributes that would
    // change content if anything applied them.
    upstream = await workTree(server.url('upstream/app', admin()));
    fs.mkdirSync(path.join(upstream, 'bin'));
    fs.writeFileSync(path.join(upstream, 'bin', 'run.sh'), '#!/bin/sh\necho hi\n', { mode: 0o755 });
    fs.symlinkSync('README', path.join(upstream, 'LINK'));
    fs.writeFileSync(path.join(upstream, '.gitignore'), 'ignored.txt\n');
    fs.writeFileSync(path.join(upstream, '.gitattributes'), '*.txt text eol=crlf\n');
    fs.writeFileSync(path.join(upstream, 'ignored.txt'), 'kept anyway\n');
    await must(git(upstream, 'add', '-f', '.'));
    await commit(upstream, 'README', 'hello\n');
    await must(git(upstream, 'tag', 'v1'));
    await must(git(upstream, 'push', '-q', 'origin', 'main', 'v1'));
    mainTree = (await must(git(upstream, 'rev-parse', 'HEAD^{tree}'))).stdout.trim();
    await must(git(upstream, 'checkout', '-q', '-b', 'other'));
    await commit(upstream, 'README', 'changed\n');
    await must(git(upstream, 'push', '-q', 'origin', 'other'));
    await must(git(upstream, 'checkout', '-q', 'main'));
    // The same files as tarballs and a zip: wrapped in one directory, and flat.
    await must(run('sh', ['-c', `git archive --format=tar --prefix=app-1.0/ main | gzip -n > ${files}/wrapped.tar.gz`], { cwd: upstream }));
    await must(run('sh', ['-c', `git archive --format=tar main > ${files}/flat.tar`], { cwd: upstream }));
    await must(run('sh', ['-c', `git archive --format=zip --prefix=app-1.0/ main > ${files}/wrapped.zip`], { cwd: upstream }));
  });
  after(async () => { origin.close(); await server.stop(); });

  const pull = (body: Record<string, unknown>, t: string | null = token) => repour(server, t, 'pull', body);

  let first: any;
  it('archives a git ref as an orphan commit of fixed identity, tagged and on a branch', async () => {
    const r = await pull({ name: 'app', type: 'git', url: gitUrl('app'), ref: 'main' });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    first = r.body;
    const id = /^repour-([0-9a-f]{40})$/.exec(r.body.tag)?.[1];
    assert.ok(id, r.body.tag);
    assert.equal(r.body.branch, `branch-pull-${id}`);
    assert.equal(r.body.url.readonly, `${server.base}/archive/app.git`);
    assert.match(r.body.url.readwrite, /^ssh:\/\/git@127\.0\.0\.1:\d+\/archive\/app\.git$/);
    const repo = server.repoDir('archive/app');
    assert.equal((await must(git(repo, 'rev-parse', `${id}^{tree}`))).stdout.trim(), mainTree, 'the very tree of the origin');
    const c = (await must(git(repo, 'cat-file', '-p', id!))).stdout;
    assert.doesNotMatch(c, /^parent /m, 'no upstream history');
    assert.match(c, /^author Repour <> 0 \+0000$/m);
    assert.match(c, /^committer Repour <> 0 \+0000$/m);
    const tag = (await must(git(repo, 'cat-file', '-p', `refs/tags/${r.body.tag}`))).stdout;
    assert.match(tag, /^type commit$/m);
    assert.match(tag, new RegExp(`Origin: ${gitUrl('app').replace(/[.]/g, '\\.')}\nReference: main\nType: git`));
    // A build host's clone: shallow, by tag, of the readonly URL.
    const dir = tmpDir('cairn-build-');
    const authed = r.body.url.readonly.replace('http://', `http://admin:${server.adminToken}@`);
    await must(git(dir, 'clone', '-q', '--depth', '1', '--branch', r.body.tag, authed, 'src'));
    assert.equal(fs.readFileSync(path.join(dir, 'src', 'README'), 'utf8'), 'hello\n');
    assert.ok(fs.statSync(path.join(dir, 'src', 'bin', 'run.sh')).mode & 0o100, 'the executable bit survives');
    assert.equal(fs.readlinkSync(path.join(dir, 'src', 'LINK')), 'README');
    // The write is in the ledger like any push, as Cairn's own (transport internal).
    const pushes = await server.api('GET', '/api/v1/repos/archive/app/pushes', undefined, server.adminToken);
    assert.equal(pushes.body.length, 1);
    assert.equal(pushes.body[0].transport, 'internal');
    assert.deepEqual(pushes.body[0].updates.map((u: { ref: string }) => u.ref).sort(), [`refs/heads/${r.body.branch}`, `refs/tags/${r.body.tag}`]);
  });

  it('answers the same tree again — by another ref, another origin, a tarball, a zip — the same, creating no ref', async () => {
    const before = await server.diskRefs('archive/app');
    const fork = await workTree(server.url('upstream/fork', admin()), 'unrelated history');
    await must(git(fork, 'pull', '-q', '--no-rebase', '--allow-unrelated-histories', '-X', 'theirs', upstream, 'main'));
    await must(git(fork, 'rm', '-q', '--cached', '-r', '.'));
    await must(git(fork, 'read-tree', mainTree));
    await must(git(fork, 'commit', '-q', '--allow-empty', '-m', 'same files, other history'));
    assert.equal((await must(git(fork, 'rev-parse', 'HEAD^{tree}'))).stdout.trim(), mainTree);
    await must(git(fork, 'push', '-q', 'origin', 'HEAD:refs/heads/main'));
    const headSha = (await must(git(upstream, 'rev-parse', 'main'))).stdout.trim();
    for (const body of [
      { name: 'app', type: 'git', url: gitUrl('app'), ref: 'v1' },
      { name: 'app', type: 'git', url: gitUrl('app'), ref: headSha },
      { name: 'app', type: 'git', url: gitUrl('app') },
      { name: 'app', type: 'git', url: gitUrl('fork'), ref: 'main' },
      { name: 'app', type: 'archive', url: `${origin.url}/files/wrapped.tar.gz` },
      { name: 'app', type: 'archive', url: `${origin.url}/files/flat.tar` },
      { name: 'app', type: 'archive', url: `${origin.url}/files/wrapped.zip` },
    ]) {
      const r = await pull(body);
      assert.equal(r.status, 200, `${JSON.stringify(body)}: ${JSON.stringify(r.body)}`);
      assert.deepEqual(r.body, first, JSON.stringify(body));
    }
    assert.deepEqual(await server.diskRefs('archive/app'), before, 'no ref was created or moved');
  });

  it('finds the tag by its name when the dedup row is missing (refs landed, then the server died), and writes the row', async () => {
    const db = server.extraEnv.DATABASE_URL ? knex({ client: 'pg', connection: server.extraEnv.DATABASE_URL })
      : knex({ client: 'sqlite3', connection: { filename: path.join(server.dataDir, 'cairn.sqlite') }, useNullAsDefault: true });
    try {
      assert.equal(await db('archive_trees').where({ tree: mainTree }).delete(), 1);
      const before = await server.diskRefs('archive/app');
      const r = await pull({ name: 'app', type: 'git', url: gitUrl('app'), ref: 'main' });
      assert.deepEqual(r.body, first);
      assert.deepEqual(await server.diskRefs('archive/app'), before);
      assert.equal((await db('archive_trees').where({ tree: mainTree }).first()).tag, first.tag);
    } finally { await db.destroy(); }
  });

  it('gives a different tree a new tag and never touches the old one', async () => {
    const before = await server.diskRefs('archive/app');
    const r = await pull({ name: 'app', type: 'git', url: gitUrl('app'), ref: 'other' });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.notEqual(r.body.tag, first.tag);
    const after = await server.diskRefs('archive/app');
    for (const [ref, id] of before) assert.equal(after.get(ref), id, `${ref} unchanged`);
    assert.equal(after.size, before.size + 2);
  });

  it('gives two identical requests at the same moment one tag and no error', async () => {
    fs.writeFileSync(path.join(files, 'race.tar.gz'), tarball([{ name: 'race/', type: '5' }, { name: 'race/x', content: 'race\n' }]));
    const before = await server.diskRefs('archive/app');
    const answers = await Promise.all(Array.from({ length: 4 }, () => pull({ name: 'app', type: 'archive', url: `${origin.url}/files/race.tar.gz` })));
    for (const a of answers) assert.equal(a.status, 200, JSON.stringify(a.body));
    assert.equal(new Set(answers.map((a) => JSON.stringify(a.body))).size, 1, 'one answer');
    assert.equal((await server.diskRefs('archive/app')).size, before.size + 2, 'one tag and one branch');
  });

  describe('bad input', () => {
    const refused = async (body: Record<string, unknown>, desc: RegExp) => {
      const r = await pull(body);
      assert.equal(r.status, 400, JSON.stringify(r.body));
      assert.equal(r.body.exit_code, 10, JSON.stringify(r.body));
      assert.match(r.body.desc, desc);
      assert.match(r.body.error_traceback, /^[0-9a-f]{32}$/);
      assert.ok('cmd' in r.body && 'stderr' in r.body && 'error_type' in r.body);
      return r.body;
    };
    it('an unknown ref: exit code 10, with the command and git\'s words', async () => {
      const b = await refused({ name: 'app', type: 'git', url: gitUrl('app'), ref: 'no-such-branch' }, /could not fetch no-such-branch/);
      assert.equal(b.cmd[0], 'git');
      assert.match(b.stderr, /no-such-branch/);
    });
    it('an unreachable origin', () => refused({ name: 'app', type: 'git', url: `http://127.0.0.1:${closedPort}/x.git`, ref: 'main' }, /could not fetch/));
    it('an origin that is not git', () => refused({ name: 'app', type: 'git', url: `${origin.url}/notgit.git`, ref: 'main' }, /could not fetch/));
    it('an origin that hangs is stopped at the timeout', async () => {
      await refused({ name: 'app', type: 'git', url: `${origin.url}/hang.git`, ref: 'main' }, /took longer/);
      await refused({ name: 'app', type: 'archive', url: `${origin.url}/hang.tar.gz` }, /took longer/);
    });
    it('a huge origin: a git repository, an endless download, a decompression bomb, too many entries', async () => {
      const big = await workTree(server.url('upstream/big', admin()));
      fs.writeFileSync(path.join(big, 'blob'), (await import('node:crypto')).randomBytes(600_000));
      await must(git(big, 'add', 'blob')); await must(git(big, 'commit', '-q', '-m', 'big'));
      await must(git(big, 'push', '-q', 'origin', 'main'));
      await refused({ name: 'app', type: 'git', url: gitUrl('big'), ref: 'main' }, /larger than 300000/);
      await refused({ name: 'app', type: 'archive', url: `${origin.url}/endless` }, /larger than 300000/);
      fs.writeFileSync(path.join(files, 'bomb.tar.gz'), tarball([{ name: 'zeros', content: Buffer.alloc(5_000_000) }]));
      assert.ok(fs.statSync(path.join(files, 'bomb.tar.gz')).size < 300000, 'the bomb itself is small');
      await refused({ name: 'app', type: 'archive', url: `${origin.url}/files/bomb.tar.gz` }, /more than 300000 bytes/);
      // A gzip stream of nothing but zeros: no header declares its size, the unpacked-byte count stops it.
      fs.writeFileSync(path.join(files, 'zeros.tar.gz'), zlib.gzipSync(Buffer.concat([tarball([{ name: 'a', content: 'a' }], false).subarray(0, 1024), Buffer.alloc(3_000_000)])));
      const z = await pull({ name: 'app', type: 'archive', url: `${origin.url}/files/zeros.tar.gz` });
      assert.deepEqual([z.status, z.body.exit_code], [400, 10], JSON.stringify(z.body));
      fs.writeFileSync(path.join(files, 'many.tar.gz'), tarball(Array.from({ length: 60 }, (_, i) => ({ name: `f${i}`, content: `${i}` }))));
      await refused({ name: 'app', type: 'archive', url: `${origin.url}/files/many.tar.gz` }, /more than 40 entries/);
    });
    it('tarballs with .. paths, absolute paths, symlinks pointing out, device files, hard links: refused, nothing written outside', async () => {
      const outside = path.join(tmpDir('cairn-outside-'), 'pwned');
      const cases: [string, Parameters<typeof tarball>[0], RegExp][] = [
        ['dotdot', [{ name: 'ok', content: 'x' }, { name: '../../../../pwned', content: 'x' }], /"\.\." path/],
        ['absolute', [{ name: outside, content: 'x' }], /absolute path/],
        ['link-out', [{ name: 'l', type: '2', link: path.dirname(outside) }, { name: 'l/pwned', content: 'x' }], /absolute/],
        ['link-up', [{ name: 'l', type: '2', link: '../../../../../../../..' }, { name: 'l/pwned', content: 'x' }], /out of the tree/],
        ['through-link', [{ name: 'l', type: '2', link: 'sub' }, { name: 'l/x', content: 'x' }], /through a symlink/],
        ['device', [{ name: 'dev', type: '3' }], /CharacterDevice/],
        ['fifo', [{ name: 'fifo', type: '6' }], /FIFO/],
        ['hardlink', [{ name: 'h', type: '1', link: '/etc/passwd' }], /Link/],
        ['dotgit', [{ name: '.git/hooks/post-checkout', content: '#!/bin/sh\n', mode: 0o755 }], /\.git path/],
      ];
      for (const [name, entries, why] of cases) {
        fs.writeFileSync(path.join(files, `${name}.tar.gz`), tarball(entries));
        await refused({ name: 'app', type: 'archive', url: `${origin.url}/files/${name}.tar.gz` }, why);
      }
      const zips: [string, Parameters<typeof zipball>[0], RegExp][] = [
        ['zip-dotdot', [{ name: 'ok', content: 'x', mode: 0o100644 }, { name: '../../../../pwned', content: 'x', mode: 0o100644 }], /relative path|"\.\." path/],
        ['zip-absolute', [{ name: outside, content: 'x', mode: 0o100644 }], /absolute path/],
        ['zip-link-out', [{ name: 'l', content: path.dirname(outside), mode: 0o120777 }, { name: 'l/pwned', content: 'x', mode: 0o100644 }], /absolute/],
        ['zip-link-up', [{ name: 'l', content: '../../../../..', mode: 0o120777 }], /out of the tree/],
        ['zip-device', [{ name: 'dev', mode: 0o020644 }], /special file/],
      ];
      for (const [name, entries, why] of zips) {
        fs.writeFileSync(path.join(files, `${name}.zip`), zipball(entries));
        await refused({ name: 'app', type: 'archive', url: `${origin.url}/files/${name}.zip` }, why);
      }
      fs.writeFileSync(path.join(files, 'fine.zip'), zipball([{ name: 'd/', mode: 0o040755 }, { name: 'd/x', content: 'x', mode: 0o100755 }]));
      const fine = await pull({ name: 'zipped', type: 'archive', url: `${origin.url}/files/fine.zip` });
      assert.equal(fine.status, 200, `the positive control: ${JSON.stringify(fine.body)}`);
      assert.match((await must(git(server.repoDir('archive/zipped'), 'ls-tree', fine.body.tag))).stdout, /^100755 blob \S+\tx$/m, 'unwrapped, executable');
      assert.ok(!fs.existsSync(outside), 'nothing was written outside the work dir');
      fs.writeFileSync(path.join(files, 'README'), 'not an archive\n');
      await refused({ name: 'app', type: 'archive', url: `${origin.url}/files/README` }, /not a tar/);
    });
    it('origins outside the allow-list: refused before any connection', async () => {
      for (const url of [`http://127.0.0.1:${port}/acme/private.git`, 'http://169.254.169.254/latest/meta-data.git', 'file:///etc',
        `http://127.0.0.1:${port}/upstream/../acme/private.git`, `http://127.0.0.10:${port}/upstream/app.git`]) {
        const b = await refused({ name: 'app', type: 'git', url, ref: 'main' }, /not allowed/);
        assert.equal(b.error_type, 'OriginNotAllowed');
      }
      // A redirect is followed only into the allow-list.
      await refused({ name: 'app', type: 'archive', url: `${origin.url}/redirect?to=${encodeURIComponent('http://169.254.169.254/x.tar.gz')}` }, /not allowed/);
      const ok = await pull({ name: 'app', type: 'archive', url: `${origin.url}/redirect?to=${encodeURIComponent(`${origin.url}/files/flat.tar`)}` });
      assert.deepEqual(ok.body, first);
    });
  });

  describe('requests', () => {
    it('need a token with the archive permission (401 none, 403 without it), which only an admin mints', async () => {
      const body = { name: 'app', type: 'git', url: gitUrl('app'), ref: 'main' };
      const none = await pull(body, null);
      assert.deepEqual([none.status, none.body], [401, '']);
      const plain = await server.user('dev');
      const forbidden = await pull(body, plain);
      assert.deepEqual([forbidden.status, forbidden.body], [403, '']);
      const self = await server.api('POST', '/api/v1/users/dev/tokens', { permissions: ['archive'] }, plain);
      assert.equal(self.status, 403);
      const minted = await server.api('POST', '/api/v1/users/dev/tokens', { permissions: ['archive'] }, server.adminToken);
      assert.deepEqual(minted.body.permissions, ['archive']);
      assert.equal((await pull(body, minted.body.token)).status, 200);
      const listed = await server.api('GET', '/api/v1/users/dev/tokens', undefined, server.adminToken);
      assert.deepEqual(listed.body.map((t: { permissions: string[] }) => t.permissions.join(',')).sort(), ['', 'archive']);
      const plainAdmin = await pull(body, server.adminToken);
      assert.equal(plainAdmin.status, 403, 'an admin token without the permission is no archive token');
    });
    it('/version answers without a token, as Repour; unknown paths 404, other methods 405', async () => {
      const v = await fetch(`${server.base}/repour/version`);
      assert.equal(v.status, 200);
      assert.equal(v.headers.get('access-control-allow-origin'), '*');
      const body = await v.json() as Record<string, unknown>;
      assert.deepEqual(Object.keys(body).sort(), ['builtOn', 'commit', 'components', 'name', 'version']);
      assert.equal(body.name, 'Repour');
      assert.equal((await fetch(`${server.base}/repour/nothing-here`, { method: 'POST' })).status, 404);
      assert.equal((await fetch(`${server.base}/repour/pull`)).status, 405);
    });
    it('that fail validation get 400 with a list of {error_message, error_type, path}, and change nothing', async () => {
      const before = await server.diskRefs('archive/app');
      const notJson = await pull('{nope' as never);
      assert.deepEqual(notJson.body, [{ error_message: 'expected json', error_type: 'json parsability', path: [] }]);
      const missing = await pull({ name: 'app', type: 'git' });
      assert.equal(missing.status, 400);
      assert.deepEqual(missing.body, [{ error_message: 'required key not provided', error_type: 'required key', path: ['url'] }]);
      const extra = await pull({ name: 'app', type: 'git', url: gitUrl('app'), colour: 'red' });
      assert.deepEqual(extra.body.map((e: { path: string[] }) => e.path), [['colour']]);
      const badUrl = await pull({ name: 'app', type: 'git', url: 'not a url' });
      assert.deepEqual(badUrl.body, [{ error_message: 'expected a URL', error_type: 'dictionary value', path: ['url'] }]);
      const badName = await pull({ name: 'app.git', type: 'hg', url: gitUrl('app') });
      assert.deepEqual(badName.body.map((e: { path: string[] }) => e.path[0]).sort(), ['type']);
      const badName2 = await pull({ name: 'app.git', type: 'git', url: gitUrl('app') });
      assert.deepEqual(badName2.body.map((e: { path: string[] }) => e.path[0]), ['name']);
      const cb = await pull({ name: 'app', type: 'git', url: gitUrl('app'), callback: { method: 'GET' } });
      assert.equal(cb.status, 400, 'an invalid body in callback mode is answered at once, never 202');
      assert.ok(Array.isArray(cb.body));
      assert.deepEqual(await server.diskRefs('archive/app'), before);
    });
  });
});
