import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { spawn } from 'node:child_process';
import { Client } from 'ssh2';
import { commit, git, gitEnvRun, must, run, sshCommand, sshEnv, sshKeyPair, startTestServer, TestServer, tmpDir, waitFor, workTree } from '../harness';
import { FLUSH, pkt } from '../../server/git';

const DSA_KEY = 'ssh-dss AAAAB3NzaC1kc3MAAACBAP1/U4EddRIpUt9KnC7s5Of2EbdSPO9EAMMeP4C2USZpRV1AIlH7WT2NWPq/xfW6MPbLm1Vs14E7gB00b/JmYLdrmVClpJ+f6AR7ECLCT7up1/63xhv4O1fnxqimFQ8E+4P208UewwI1VBNaFpEy9nXzrith1yrv8iIDGZ3RSAHHAAAAFQCXYFCPFSMLzLKSuYKi64QL8Fgc9QAAAIEA9+GghdabPd7LvKtcNrhXuXmUr7v6OuqC+VdMCz0HgmdRWVeOutRZT+ZxBxCBgLRJFnEj6EwoFhO3zwkyjMim4TwWeotUfI0o4KOuHiuzpnWRbqN/C/ohNWLx+2J6ASQ7zKTxvqhRkImog9/hWuWfBpKLZl6Ae1UlZAFMO/7PSSoAAACBAOHahQCi8eJz0SKNXMFv0oZ7PwZbSgdbPSpAhtIzbYZFnEZDmmbsSmtI1TCYf+UjPdBUSGkCuKL4cD6Oaa00zHKfQy4qqFx7YkqSrhjw2eVaUuVuvb8Q6LeHzt3EtWlpDdUa1+QQ1hP7YvNCQJIKLKgbEs3hPt4lKxrlaUeb7uHY dsa@old';

describe('git over SSH with the real OpenSSH client', () => {
  let server: TestServer;
  let alice: string; let aliceKey: { path: string; publicKey: string };
  let work: string;
  const ssh = (keyPath: string, ...args: string[]) => { const [cmd, ...opts] = sshCommand(server, keyPath); return run(cmd, [...opts, ...args]); };

  before(async () => {
    server = await startTestServer();
    alice = await server.user('alice');
    await server.repo('acme', 'app');
    await server.repo('acme', 'lib');
    await server.api('PUT', '/api/v1/repos/acme/app/members/alice', { role: 'write' }, server.adminToken);
    aliceKey = await sshKeyPair('ed25519');
    const added = await server.api('POST', '/api/v1/users/alice/keys', { title: 'laptop', key: aliceKey.publicKey }, alice);
    assert.equal(added.status, 201, JSON.stringify(added.body));
    work = await workTree(server.sshUrl('acme/app'));
    await commit(work, 'a.txt', 'a\n');
    await must(git(work, 'tag', '-a', 'v1', '-m', 'one'));
  });
  after(() => server.stop());

  describe('keys', () => {
    it('shows the SHA256 fingerprint as ssh-keygen -lf prints it, for ed25519, ECDSA and RSA', async () => {
      for (const [type, bits] of [['ecdsa', 256], ['rsa', 2048]] as const) {
        const k = await sshKeyPair(type, bits);
        const r = await server.api('POST', '/api/v1/users/alice/keys', { title: type, key: k.publicKey }, alice);
        assert.equal(r.status, 201, JSON.stringify(r.body));
        const keygen = (await must(run('ssh-keygen', ['-lf', `${k.path}.pub`]))).stdout.split(' ')[1];
        assert.equal(r.body.fingerprint, keygen);
      }
      const list = await server.api('GET', '/api/v1/users/alice/keys', undefined, alice);
      assert.deepEqual(list.body.map((k: { title: string }) => k.title), ['laptop', 'ecdsa', 'rsa']);
    });

    it('refuses DSA, short RSA, garbage, truncated keys, options, and private keys (never storing or logging them)', async () => {
      const shortRsa = await sshKeyPair('rsa', 1024);
      const priv = fs.readFileSync(aliceKey.path, 'utf8');
      const cases: [string, string, RegExp][] = [
        ['dsa', DSA_KEY, /DSA/], ['rsa-1024', shortRsa.publicKey, /2048/], ['garbage', 'hello world', /authorized_keys form|unsupported/],
        ['truncated', aliceKey.publicKey.slice(0, 40), /malformed|truncated/], ['options', `command="ls" ${aliceKey.publicKey}`, /authorized_keys form|unsupported/],
        ['private', priv, /private key/], ['two keys', `${aliceKey.publicKey}\n${shortRsa.publicKey}`, /one key/],
      ];
      for (const [what, key, message] of cases) {
        const r = await server.api('POST', '/api/v1/users/alice/keys', { title: what, key }, alice);
        assert.equal(r.status, 422, what);
        assert.match(r.body.error.message, message, what);
        assert.ok(!r.body.error.message.includes('AAAA'), `${what}: no key material echoed`);
      }
      const body = priv.split('\n')[1];
      assert.ok(!server.stderr.includes(body), 'the private key never reaches the log');
      assert.equal((await server.api('GET', '/api/v1/users/alice/keys', undefined, alice)).body.length, 3);
    });

    it('refuses the same key twice anywhere (409): a key names exactly one principal', async () => {
      assert.equal((await server.api('POST', '/api/v1/users/alice/keys', { title: 'again', key: aliceKey.publicKey }, alice)).status, 409);
      const asDeploy = await server.api('POST', '/api/v1/repos/acme/lib/deploy-keys', { title: 'ci', key: aliceKey.publicKey }, server.adminToken);
      assert.equal(asDeploy.status, 409);
    });

    it('cairn admin add-key does the same without a server', async () => {
      const k = await sshKeyPair('ed25519');
      await server.user('bob');
      const r = await server.cli('admin', 'add-key', 'bob', `${k.path}.pub`);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stdout.trim(), (await must(run('ssh-keygen', ['-lf', `${k.path}.pub`]))).stdout.split(' ')[1]);
      const again = await server.cli('admin', 'add-key', 'bob', `${k.path}.pub`);
      assert.notEqual(again.code, 0);
      assert.match(again.stderr, /already registered/);
    });
  });

  describe('git', () => {
    it('pushes over ssh:// and records the push with transport ssh', async () => {
      const push = await gitEnvRun(work, sshEnv(server, aliceKey.path), 'push', 'origin', 'main', 'v1');
      assert.equal(push.code, 0, push.stderr);
      const pushes = await server.api('GET', '/api/v1/repos/acme/app/pushes', undefined, alice);
      assert.deepEqual([pushes.body[0].user, pushes.body[0].transport], ['alice', 'ssh']);
    });

    for (const version of ['2', '0']) {
      it(`clones with protocol v${version}, in the ssh:// and scp forms, shallow and partial`, async () => {
        const env = { ...sshEnv(server, aliceKey.path), GIT_TRACE_PACKET: '1' };
        const dir = tmpDir();
        const full = await gitEnvRun(dir, env, '-c', `protocol.version=${version}`, 'clone', '-q', server.sshUrl('acme/app'), 'full');
        assert.equal(full.code, 0, full.stderr);
        if (version === '2') assert.match(full.stderr, /version 2/); else assert.doesNotMatch(full.stderr, /ls-refs/);
        const scpEnv = { GIT_SSH_COMMAND: sshEnv(server, aliceKey.path).GIT_SSH_COMMAND };
        const scp = await gitEnvRun(dir, scpEnv, '-c', `protocol.version=${version}`, 'clone', '-q', server.sshUrl('acme/app', true), 'scp');
        assert.equal(scp.code, 0, scp.stderr);
        const shallow = await gitEnvRun(dir, scpEnv, '-c', `protocol.version=${version}`, 'clone', '-q', '--depth', '1', '--branch', 'v1', server.sshUrl('acme/app'), 'shallow');
        assert.equal(shallow.code, 0, shallow.stderr);
        assert.equal((await git(`${dir}/shallow`, 'rev-list', '--count', 'HEAD')).stdout.trim(), '1');
        const partial = await gitEnvRun(dir, scpEnv, '-c', `protocol.version=${version}`, 'clone', '-q', '--filter=blob:none', server.sshUrl('acme/app'), 'partial');
        assert.equal(partial.code, 0, partial.stderr);
      });
    }

    it('serves git archive --remote', async () => {
      const out = path.join(tmpDir(), 'a.tar');
      const r = await gitEnvRun(work, sshEnv(server, aliceKey.path), 'archive', '--remote', server.sshUrl('acme/app'), '-o', out, 'v1');
      assert.equal(r.code, 0, r.stderr);
      assert.match((await must(run('tar', ['-tf', out]))).stdout, /^a\.txt$/m);
    });

    it('protects history exactly as over HTTP: same codes, nothing applied', async () => {
      const before = await server.diskRefs('acme/app');
      await must(git(work, 'tag', '-f', '-a', 'v1', '-m', 'moved', 'HEAD'));
      await commit(work, 'b.txt', 'b\n');
      await must(git(work, 'tag', '-f', '-a', 'v1', '-m', 'moved'));
      const move = await gitEnvRun(work, sshEnv(server, aliceKey.path), 'push', '--force', 'origin', 'main', 'v1');
      assert.notEqual(move.code, 0);
      assert.match(move.stderr, /remote: CAIRN_TAG_IMMUTABLE refs\/tags\/v1: tags are immutable/);
      assert.deepEqual(await server.diskRefs('acme/app'), before);
      const del = await gitEnvRun(work, sshEnv(server, aliceKey.path), 'push', 'origin', ':refs/heads/main');
      assert.match(del.stderr, /remote: CAIRN_REF_DELETE refs\/heads\/main/);
      const w = await workTree(server.sshUrl('acme/app'), 'diverged');
      const nonFf = await gitEnvRun(w, sshEnv(server, aliceKey.path), 'push', '--force', 'origin', 'HEAD:main');
      assert.match(nonFf.stderr, /remote: CAIRN_NON_FAST_FORWARD refs\/heads\/main/);
      assert.deepEqual(await server.diskRefs('acme/app'), before);
      await must(git(work, 'tag', '-d', 'v1'));
      await must(gitEnvRun(work, sshEnv(server, aliceKey.path), 'fetch', '-q', 'origin', 'refs/tags/v1:refs/tags/v1'));
      assert.equal((await gitEnvRun(work, sshEnv(server, aliceKey.path), 'push', '-q', 'origin', 'main')).code, 0, 'positive control');
    });

    it('hides what you may not read, exactly as a missing repo, and refuses a push with read only', async () => {
      const missing = await gitEnvRun(tmpDir(), sshEnv(server, aliceKey.path), 'clone', server.sshUrl('acme/nope'), 'c');
      const hidden = await gitEnvRun(tmpDir(), sshEnv(server, aliceKey.path), 'clone', server.sshUrl('acme/lib'), 'c');
      assert.notEqual(hidden.code, 0);
      assert.equal(hidden.stderr.replace('acme/lib', 'X'), missing.stderr.replace('acme/nope', 'X'));
      await server.api('PUT', '/api/v1/repos/acme/lib/members/alice', { role: 'read' }, server.adminToken);
      const dir = tmpDir();
      await must(gitEnvRun(dir, sshEnv(server, aliceKey.path), 'clone', '-q', server.sshUrl('acme/lib'), 'c'));
      await must(git(`${dir}/c`, 'commit', '-q', '--allow-empty', '-m', 'x'));
      const push = await gitEnvRun(`${dir}/c`, sshEnv(server, aliceKey.path), 'push', 'origin', 'HEAD:main');
      assert.notEqual(push.code, 0);
      assert.match(push.stderr, /write access to acme\/lib is required/);
    });

    it('deploy keys: a tenant key reads every repo of its tenant; a repo key reads, or writes when made so', async () => {
      const tenantKey = await sshKeyPair();
      const readKey = await sshKeyPair();
      const writeKey = await sshKeyPair();
      assert.equal((await server.api('POST', '/api/v1/tenants/acme/deploy-keys', { title: 'mirror', key: tenantKey.publicKey }, server.adminToken)).status, 201);
      assert.equal((await server.api('POST', '/api/v1/tenants/acme/deploy-keys', { title: 'x', key: readKey.publicKey, write: true }, server.adminToken)).status, 422, 'tenant keys are read-only');
      assert.equal((await server.api('POST', '/api/v1/repos/acme/app/deploy-keys', { title: 'ci-read', key: readKey.publicKey }, server.adminToken)).status, 201);
      assert.equal((await server.api('POST', '/api/v1/repos/acme/app/deploy-keys', { title: 'ci-write', key: writeKey.publicKey, write: true }, server.adminToken)).status, 201);
      for (const repo of ['acme/app', 'acme/lib']) {
        assert.equal((await gitEnvRun(tmpDir(), sshEnv(server, tenantKey.path), 'clone', '-q', server.sshUrl(repo), 'c')).code, 0, repo);
      }
      await server.repo('other', 'elsewhere');
      assert.notEqual((await gitEnvRun(tmpDir(), sshEnv(server, tenantKey.path), 'clone', '-q', server.sshUrl('other/elsewhere'), 'c')).code, 0,
        "a tenant's deploy key reads that tenant only");
      assert.notEqual((await gitEnvRun(tmpDir(), sshEnv(server, writeKey.path), 'clone', '-q', server.sshUrl('acme/lib'), 'c')).code, 0,
        "a repo's deploy key reaches that repo only");
      assert.equal((await server.api('POST', '/api/v1/repos/acme/lib/deploy-keys', { title: 'x', key: (await sshKeyPair()).publicKey }, alice)).status, 403,
        'only repo admins add deploy keys');
      assert.equal((await server.api('POST', '/api/v1/users/admin/keys', { title: 'x', key: (await sshKeyPair()).publicKey }, alice)).status, 404,
        "nobody adds keys to someone else's account");
      assert.notEqual((await gitEnvRun(tmpDir(), sshEnv(server, readKey.path), 'clone', '-q', server.sshUrl('acme/lib'), 'c')).code, 0);
      const dir = tmpDir();
      await must(gitEnvRun(dir, sshEnv(server, readKey.path), 'clone', '-q', server.sshUrl('acme/app'), 'c'));
      await commit(`${dir}/c`, 'ci.txt', 'ci\n');
      assert.notEqual((await gitEnvRun(`${dir}/c`, sshEnv(server, readKey.path), 'push', 'origin', 'HEAD:main')).code, 0);
      assert.notEqual((await gitEnvRun(`${dir}/c`, sshEnv(server, tenantKey.path), 'push', 'origin', 'HEAD:main')).code, 0);
      const ok = await gitEnvRun(`${dir}/c`, sshEnv(server, writeKey.path), 'push', 'origin', 'HEAD:main');
      assert.equal(ok.code, 0, ok.stderr);
      const pushes = (await server.api('GET', '/api/v1/repos/acme/app/pushes', undefined, server.adminToken)).body;
      assert.deepEqual([pushes.at(-1).user, pushes.at(-1).transport], ['ci-write', 'ssh']);
    });
  });

  describe('the shell', () => {
    it('answers no command, or info, with who you are and what you can reach', async () => {
      for (const args of [['-T', 'git@127.0.0.1'], ['git@127.0.0.1', 'info'], ['-t', 'git@127.0.0.1']]) {
        const r = await ssh(aliceKey.path, ...args);
        assert.equal(r.code, 0, r.stderr);
        assert.match(r.stdout, /hello alice/);
        assert.match(r.stdout, /R W {2}\s*acme\/app/);
        assert.match(r.stdout, /R {3}\s*acme\/lib/);
      }
      const pty = await ssh(aliceKey.path, '-tt', 'git@127.0.0.1');
      assert.match(pty.stderr, /PTY allocation request failed/, 'a PTY is refused');
      assert.doesNotMatch(pty.stdout, /acme/);
    });

    it('refuses other commands, quoting tricks, paths outside the repos root, sftp and forwarding, in one line', async () => {
      for (const command of ['ls', 'bash -c id', "git-upload-pack 'acme/app.git'; rm -rf /", "git-upload-pack '../../etc/passwd'",
        "git-upload-pack '/etc/passwd'", "git-upload-pack 'acme/../app.git'", "git-upload-pack 'acme/app.git", 'git-upload-pack `id`/x',
        "git-upload-pack 'acme/app.git' extra"]) {
        const r = await ssh(aliceKey.path, 'git@127.0.0.1', command);
        assert.notEqual(r.code, 0, command);
        assert.equal(r.stderr.trim().split('\n').length, 1, `${command}: ${r.stderr}`);
        assert.match(r.stderr, /^cairn: /, command);
      }
      const sftp = await ssh(aliceKey.path, '-s', 'git@127.0.0.1', 'sftp');
      assert.notEqual(sftp.code, 0);
      assert.match(sftp.stderr, /sftp subsystem is not available/);
      const forward = await ssh(aliceKey.path, '-W', '127.0.0.1:22', 'git@127.0.0.1');
      assert.notEqual(forward.code, 0);
      assert.match(forward.stderr, /open failed|administratively prohibited|forwarding failed/i);
    });

    it('removes the keys a token added when that token is revoked: a leaked token leaves no way back in', async () => {
      const t = await server.api('POST', '/api/v1/users/alice/tokens', { expires_in: 600 }, alice);
      const k = await sshKeyPair();
      assert.equal((await server.api('POST', '/api/v1/users/alice/keys', { title: 'via-token', key: k.publicKey }, t.body.token)).status, 201);
      assert.equal((await ssh(k.path, 'git@127.0.0.1', 'info')).code, 0, 'positive control');
      assert.equal((await server.api('DELETE', `/api/v1/users/alice/tokens/${t.body.id}`, undefined, alice)).status, 204);
      assert.notEqual((await ssh(k.path, 'git@127.0.0.1', 'info')).code, 0);
      assert.equal((await ssh(aliceKey.path, 'git@127.0.0.1', 'info')).code, 0, 'keys added otherwise stay');
    });

    it('lets a removed key open nothing from that moment', async () => {
      const k = await sshKeyPair();
      const added = await server.api('POST', '/api/v1/users/alice/keys', { title: 'temp', key: k.publicKey }, alice);
      assert.equal((await ssh(k.path, 'git@127.0.0.1', 'info')).code, 0, 'positive control');
      assert.equal((await server.api('DELETE', `/api/v1/users/alice/keys/${added.body.id}`, undefined, alice)).status, 204);
      const r = await ssh(k.path, 'git@127.0.0.1', 'info');
      assert.notEqual(r.code, 0);
      assert.match(r.stderr, /Permission denied/);
    });
  });

  describe('bad input', () => {
    it('applies nothing when the client disconnects mid-push, and keeps serving', async () => {
      const before = await server.diskRefs('acme/app');
      const dir = tmpDir();
      await must(gitEnvRun(dir, sshEnv(server, aliceKey.path), 'clone', '-q', server.sshUrl('acme/app'), 'c'));
      const next = await commit(`${dir}/c`, 'cut.txt', 'never arrives\n');
      // A hand-driven push: valid commands, then half a pack, then the connection drops.
      const [cmd, ...opts] = sshCommand(server, aliceKey.path);
      const child = spawn(cmd, [...opts, 'git@127.0.0.1', "git-receive-pack 'acme/app.git'"]);
      await new Promise<void>((resolve) => child.stdout.once('data', () => resolve()));
      const old = before.get('refs/heads/main')!;
      child.stdin.write(Buffer.concat([pkt(`${old} ${next} refs/heads/main\0report-status side-band-64k\n`), FLUSH,
        Buffer.from('PACK\0\0\0\x02\0\0\0\x05partial', 'latin1')]));
      await new Promise((r) => setTimeout(r, 200));
      child.kill('SIGKILL');
      await new Promise((r) => child.once('close', r));
      await waitFor('the server to settle nothing', async () => !fs.existsSync(path.join(server.repoDir('acme/app'), 'cairn-push.lock')));
      assert.deepEqual(await server.diskRefs('acme/app'), before);
      const ok = await gitEnvRun(`${dir}/c`, sshEnv(server, aliceKey.path), 'push', 'origin', 'HEAD:main');
      assert.equal(ok.code, 0, `the server keeps serving: ${ok.stderr}`);
      assert.equal((await git(server.repoDir('acme/app'), 'fsck', '--strict')).code, 0);
    });

    it('refuses a signature that does not verify, even one whose check throws (a public key is not a login)', async () => {
      // The attack a review found: an ed25519 key announced with an RSA signature algorithm.
      for (const algo of ['rsa-sha2-256', 'ssh-ed25519']) {
        const outcome = await new Promise<string>((resolve) => {
          const c = new Client();
          let tried = false;
          c.on('ready', () => { c.end(); resolve('authenticated'); });
          c.on('error', (e) => resolve(`refused: ${e.message}`));
          c.connect({ host: '127.0.0.1', port: server.sshPort, username: 'git', authHandler: (_m: unknown, _p: unknown, cb: (x: false) => void) => {
            if (tried) { cb(false); return; }
            tried = true;
            (c as unknown as { _protocol: { authPK: Function } })._protocol.authPK('git', aliceKey.publicKey, algo,
              (_buf: Buffer, sign: (s: Buffer) => void) => sign(Buffer.alloc(64, 1)));
          } } as never);
        });
        assert.match(outcome, /^refused/, algo);
      }
    });

    it('keeps serving when a client sends a second command on a session, or a title has control characters', async () => {
      const k = await sshKeyPair();
      assert.equal((await server.api('POST', '/api/v1/users/alice/keys', { title: 'bad\u001b[31mtitle', key: k.publicKey }, alice)).status, 422);
      await new Promise<void>((resolve) => {
        const c = new Client();
        c.on('ready', () => c.exec('info', (err, ch) => {
          if (err) { c.end(); resolve(); return; }
          const proto = (c as unknown as { _protocol: { exec: Function } })._protocol;
          proto.exec((ch as unknown as { outgoing: { id: number } }).outgoing.id, 'info', true);
          ch.on('close', () => { c.end(); resolve(); });
          setTimeout(() => { c.end(); resolve(); }, 1500);
        }));
        c.on('error', () => resolve());
        c.connect({ host: '127.0.0.1', port: server.sshPort, username: 'git', privateKey: fs.readFileSync(aliceKey.path) });
      });
      const r = await ssh(aliceKey.path, 'git@127.0.0.1', 'info');
      assert.equal(r.code, 0, `the server is still up: ${r.stderr}`);
    });

    it('settles a push and gives its lock back when the client vanishes while git is answering', async () => {
      const before = await server.diskRefs('acme/app');
      const head = before.get('refs/heads/main')!;
      const rawKey = fs.readFileSync(aliceKey.path);
      // Thousands of long new tags: git's report is far bigger than the channel's window, and nobody reads it.
      const header = Buffer.concat([Buffer.from('PACK'), Buffer.from([0, 0, 0, 2, 0, 0, 0, 0])]);
      const emptyPack = Buffer.concat([header, crypto.createHash('sha1').update(header).digest()]);
      await new Promise<void>((resolve, reject) => {
        const c = new Client();
        c.on('ready', () => c.exec("git-receive-pack 'acme/app.git'", (err, ch) => {
          if (err) { c.end(); reject(err); return; }
          let sent = false;
          ch.on('data', (d: Buffer) => {
            if (sent || !d.includes(Buffer.from('0000'))) return;
            sent = true;
            const cmds = Array.from({ length: 3000 }, (_, i) =>
              pkt(`${'0'.repeat(40)} ${head} refs/tags/vanish-${String(i).padStart(5, '0')}-${'x'.repeat(150)}${i === 0 ? '\0report-status side-band-64k' : ''}\n`));
            ch.write(Buffer.concat([...cmds, FLUSH, emptyPack]));
            ch.pause();
            waitFor('the verdict', async () => server.stderr.includes('"refs":3000')).then(() => { c.end(); resolve(); }, (e) => { c.end(); reject(e); });
          });
        }));
        c.on('error', (e) => reject(e));
        c.connect({ host: '127.0.0.1', port: server.sshPort, username: 'git', privateKey: rawKey });
      });
      const lock = path.join(server.repoDir('acme/app'), 'cairn-push.lock');
      await waitFor('the lock to be given back', async () => !fs.existsSync(lock), 15_000);
      const tags = [...(await server.diskRefs('acme/app')).keys()].filter((r) => r.startsWith('refs/tags/vanish-'));
      assert.equal(tags.length, 3000, 'git applied the push the client walked away from');
      await waitFor('no receive-pack left', async () => (await run('pgrep', ['-f', `receive-pack ${server.repoDir('acme/app')}`])).stdout.trim() === '', 15_000);
      const v = await server.cli('admin', 'verify');
      assert.equal(v.code, 0, `every ref on disk is recorded: ${v.stdout}`);
      const w = await workTree(server.sshUrl('acme/app'));
      await must(gitEnvRun(w, sshEnv(server, aliceKey.path), 'fetch', '-q', 'origin'));
      await must(git(w, 'reset', '-q', '--hard', 'origin/main'));
      await commit(w, 'after-vanish.txt', 'next\n');
      const next = await gitEnvRun(w, sshEnv(server, aliceKey.path), 'push', 'origin', 'HEAD:main');
      assert.equal(next.code, 0, next.stderr);
    });

    it('survives 50 connections opened and dropped without authenticating', async () => {
      const rss = () => Number(/VmRSS:\s+(\d+)/.exec(fs.readFileSync(`/proc/${server.child!.pid}/status`, 'utf8'))?.[1]) / 1024;
      const before = rss();
      await Promise.all(Array.from({ length: 50 }, (_, i) => new Promise<void>((resolve) => {
        const s = net.connect(server.sshPort, '127.0.0.1', () => {
          if (i % 2) s.write('SSH-2.0-garbage\r\n\0\0\0\xff junk');
          setTimeout(() => { s.destroy(); resolve(); }, 20);
        });
        s.on('error', () => resolve());
      })));
      const r = await ssh(aliceKey.path, 'git@127.0.0.1', 'info');
      assert.equal(r.code, 0, r.stderr);
      // Nothing is kept per dropped connection: the process is about the size it was (loose: RSS is coarse).
      assert.ok(rss() < before + 40, `RSS grew from ${before.toFixed(0)} MB to ${rss().toFixed(0)} MB`);
    });

    it('keeps its host keys across restarts, so known_hosts keeps working', async () => {
      const files = fs.readdirSync(server.keysDir).sort();
      assert.ok(files.includes('ssh_host_ed25519_key') && files.includes('ssh_host_rsa_key'), files.join(' '));
      assert.equal(fs.statSync(path.join(server.keysDir, 'ssh_host_ed25519_key')).mode & 0o777, 0o600);
      const logged = (text: string) => text.split('\n').filter((l) => l.includes('"ssh host key"'))
        .map((l) => /"fingerprint":"(SHA256:[^"]+)"/.exec(l)![1]).sort();
      const before = logged(server.stderr);
      assert.equal(before.length, 2, 'both fingerprints are logged at start');
      const knownHosts = path.join(tmpDir(), 'known_hosts');
      // The port changes with each start here, so an alias names the host in known_hosts.
      const connect = (strict: string) => {
        const [cmd, ...opts] = sshCommand(server, aliceKey.path, knownHosts);
        return run(cmd, [...opts.map((o) => (o === 'StrictHostKeyChecking=accept-new' ? `StrictHostKeyChecking=${strict}` : o)),
          '-o', 'HostKeyAlias=cairn-test', 'git@127.0.0.1', 'info']);
      };
      assert.equal((await connect('accept-new')).code, 0, 'first contact records the host key');
      await server.stop();
      await server.start();
      assert.deepEqual(logged(server.stderr), before, 'the same keys after a restart');
      const strict = await connect('yes');
      assert.equal(strict.code, 0, `known_hosts still matches: ${strict.stderr}`);
    });
  });
});
