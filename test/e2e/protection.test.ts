import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { commit, git, gitEnvRun, must, ROOT, startTestServer, TestServer, tmpDir, workTree } from '../harness';
import { FLUSH, pkt } from '../../server/git';

/** Promise 1 and 2: nothing pushed is ever deleted, moved backwards or re-tagged, and a refused push changes nothing. */
describe('history protection', () => {
  let server: TestServer;
  let work: string;
  let base: string;
  const pushCount = async () => (await server.api('GET', '/api/v1/repos/acme/app/pushes', undefined, server.adminToken)).body.length;

  before(async () => {
    server = await startTestServer();
    await server.repo('acme', 'app');
    work = await workTree(server.url('acme/app', { user: 'admin', token: server.adminToken }));
    base = await commit(work, 'a.txt', 'a\n');
    await must(git(work, 'tag', 'v1'));
    await must(git(work, 'tag', '-a', 'v1-annotated', '-m', 'annotated'));
    await must(git(work, 'branch', 'feature'));
    await must(git(work, 'push', '-q', 'origin', 'main', 'feature', 'v1', 'v1-annotated'));
  });
  after(() => server.stop());

  /** Runs a push that must be refused; asserts the code and ref are named and that nothing changed. */
  async function refused(args: string[], expected: RegExp[]): Promise<string> {
    const refsBefore = await server.diskRefs('acme/app');
    const pushesBefore = await pushCount();
    const push = await git(work, 'push', 'origin', ...args);
    assert.notEqual(push.code, 0, 'push must fail');
    for (const e of expected) assert.match(push.stderr, e);
    assert.deepEqual(await server.diskRefs('acme/app'), refsBefore, 'refs unchanged');
    assert.equal(await pushCount(), pushesBefore, 'no push recorded');
    return push.stderr;
  }

  it('accepts a fast-forward and a new tag (positive control)', async () => {
    await commit(work, 'b.txt', 'b\n');
    await must(git(work, 'tag', 'v2'));
    const push = await git(work, 'push', 'origin', 'main', 'v2');
    assert.equal(push.code, 0, push.stderr);
  });

  it('refuses deleting a branch', async () => {
    await refused([':refs/heads/feature'], [/remote: CAIRN_REF_DELETE refs\/heads\/feature: refs are never deleted/]);
  });

  it('refuses deleting a tag, lightweight or annotated', async () => {
    await refused([':refs/tags/v1'], [/remote: CAIRN_TAG_IMMUTABLE refs\/tags\/v1: tags are immutable/]);
    await refused(['--delete', 'v1-annotated'], [/CAIRN_TAG_IMMUTABLE refs\/tags\/v1-annotated/]);
  });

  it('refuses moving a tag, even with --force', async () => {
    const earlyBefore = server.stderr.split('push refused from its commands').length;
    await must(git(work, 'tag', '-f', 'v1', 'HEAD'));
    const stderr = await refused(['--force', 'refs/tags/v1'], [/remote: CAIRN_TAG_IMMUTABLE refs\/tags\/v1: tags are immutable/,
      /\[remote rejected\] v1 -> v1 \(CAIRN_TAG_IMMUTABLE/]);
    assert.equal(stderr.match(/^remote: CAIRN_/gm)?.length, 1, 'one remote: line per refused ref');
    assert.equal(server.stderr.split('push refused from its commands').length, earlyBefore + 1,
      'refused from the command list, before any pack was unpacked');
    await must(git(work, 'tag', '-f', 'v1', base));
  });

  it('refuses a non-fast-forward branch update (force push)', async () => {
    const w = await workTree(server.url('acme/app', { user: 'admin', token: server.adminToken }));
    await must(git(w, 'fetch', '-q', 'origin'));
    await must(git(w, 'reset', '-q', '--hard', base));
    await commit(w, 'c.txt', 'diverged\n');
    await refusedFrom(w, ['--force', 'HEAD:main'], /remote: CAIRN_NON_FAST_FORWARD refs\/heads\/main: branches only move forward/);
  });

  it('refuses refs outside refs/heads and refs/tags', async () => {
    await refused(['HEAD:refs/notes/x'], [/CAIRN_REF_NAMESPACE refs\/notes\/x/]);
    await refused(['HEAD:refs/for/main'], [/CAIRN_REF_NAMESPACE refs\/for\/main/]);
  });

  it('refuses the whole push when one ref is refused, naming every refused ref once', async () => {
    await commit(work, 'd.txt', 'd\n');
    await must(git(work, 'tag', '-f', 'v2', 'HEAD'));
    const stderr = await refused(['main', 'HEAD:refs/heads/brand-new', '+refs/tags/v2', ':refs/heads/feature'], [
      /remote: CAIRN_TAG_IMMUTABLE refs\/tags\/v2: tags are immutable/,
      /remote: CAIRN_REF_DELETE refs\/heads\/feature: refs are never deleted/]);
    assert.equal(stderr.match(/^remote: CAIRN_/gm)?.length, 2);
    assert.ok(!(await server.diskRefs('acme/app')).has('refs/heads/brand-new'), 'the allowed new branch did not land either');
    await must(git(work, 'tag', '-d', 'v2'));
    await must(git(work, 'fetch', '-q', 'origin', 'refs/tags/v2:refs/tags/v2'));
  });

  it('refuses the whole push when the hook refuses one ref after the pack arrived', async () => {
    const w = await workTree(server.url('acme/app', { user: 'admin', token: server.adminToken }));
    await must(git(w, 'fetch', '-q', 'origin'));
    await must(git(w, 'reset', '-q', '--hard', base));
    await commit(w, 'e.txt', 'diverged again\n');
    await refusedFrom(w, ['--force', 'HEAD:main', 'HEAD:refs/heads/another-new'], /CAIRN_NON_FAST_FORWARD refs\/heads\/main/);
    assert.ok(!(await server.diskRefs('acme/app')).has('refs/heads/another-new'));
  });

  async function refusedFrom(dir: string, args: string[], expected: RegExp): Promise<void> {
    const before = await server.diskRefs('acme/app');
    const pushesBefore = await pushCount();
    const push = await git(dir, 'push', 'origin', ...args);
    assert.notEqual(push.code, 0);
    assert.match(push.stderr, expected);
    assert.deepEqual(await server.diskRefs('acme/app'), before);
    assert.equal(await pushCount(), pushesBefore, 'no push recorded');
  }

  it('keeps every id a ref ever pointed to fetchable, and the repo never prunes', async () => {
    const dir = tmpDir();
    await must(git(dir, 'init', '-q'));
    const fetched = await git(dir, 'fetch', '-q', server.url('acme/app', { user: 'admin', token: server.adminToken }), base);
    assert.equal(fetched.code, 0, fetched.stderr);
    const config = (await must(git(server.repoDir('acme/app'), 'config', '--list', '--local'))).stdout;
    for (const line of ['gc.pruneexpire=never', 'receive.denydeletes=true', 'receive.denynonfastforwards=true', 'receive.fsckobjects=true',
      `core.hookspath=${path.join(ROOT, 'hooks')}`]) {
      assert.ok(config.split('\n').includes(line), `${line} in\n${config}`);
    }
  });

  it('refuses a push straight into the repository on disk (the hook fails closed)', async () => {
    const repoDir = server.repoDir('acme/app');
    const before = await server.diskRefs('acme/app');
    await commit(work, 'disk.txt', 'around the server\n');
    const push = await git(work, 'push', repoDir, 'HEAD:main', 'HEAD:refs/heads/sneaky');
    assert.notEqual(push.code, 0);
    assert.match(push.stderr, /CAIRN_NO_SERVER refs\/heads\/main/);
    assert.match(push.stderr, /CAIRN_NO_SERVER refs\/heads\/sneaky/);
    const forged = await gitEnvRun(work, { CAIRN_HOOK_PORT: '1', CAIRN_PUSH_TOKEN: 'f'.repeat(64) }, 'push', repoDir, 'HEAD:main');
    assert.notEqual(forged.code, 0);
    assert.match(forged.stderr, /CAIRN_SERVER_UNREACHABLE/);
    // A forged token against the real hook listener: the session is unknown.
    const hookPort = /"hook_port":(\d+)/.exec(server.stderr)?.[1];
    assert.ok(hookPort, 'the server logs its hook port');
    const guessed = await gitEnvRun(work, { CAIRN_HOOK_PORT: hookPort, CAIRN_PUSH_TOKEN: 'f'.repeat(64) }, 'push', repoDir, 'HEAD:main');
    assert.notEqual(guessed.code, 0);
    assert.match(guessed.stderr, /CAIRN_NO_SESSION/);
    assert.deepEqual(await server.diskRefs('acme/app'), before);
  });

  it('refuses every push to an archived repository', async () => {
    await server.repo('acme', 'frozen');
    const w = await workTree(server.url('acme/frozen', { user: 'admin', token: server.adminToken }));
    await must(git(w, 'push', '-q', 'origin', 'main'));
    assert.equal((await server.api('PATCH', '/api/v1/repos/acme/frozen', { archived: true }, server.adminToken)).status, 200);
    await commit(w, 'x.txt', 'x\n');
    const push = await git(w, 'push', 'origin', 'main');
    assert.notEqual(push.code, 0);
    assert.match(push.stderr, /CAIRN_REPO_ARCHIVED refs\/heads\/main/);
    const clone = await git(tmpDir(), 'clone', '-q', server.url('acme/frozen', { user: 'admin', token: server.adminToken }));
    assert.equal(clone.code, 0, 'an archived repo stays readable');
  });

  it('ignores a tampered repository config: the hook and git\'s checks ride on every receive-pack', async () => {
    const repoDir = server.repoDir('acme/app');
    await must(git(repoDir, 'config', 'core.hooksPath', '/nonexistent'));
    await must(git(repoDir, 'config', 'receive.denyNonFastForwards', 'false'));
    const w = await workTree(server.url('acme/app', { user: 'admin', token: server.adminToken }));
    await must(git(w, 'fetch', '-q', 'origin'));
    await must(git(w, 'reset', '-q', '--hard', base));
    await commit(w, 'f.txt', 'forced over a tampered config\n');
    await refusedFrom(w, ['--force', 'HEAD:main'], /CAIRN_NON_FAST_FORWARD refs\/heads\/main/);
  });

  it('refuses hand-made pushes git never sends: an unchanged ref, the same ref twice', async () => {
    const head = (await server.diskRefs('acme/app')).get('refs/heads/main')!;
    const basic = `Basic ${Buffer.from(`admin:${server.adminToken}`).toString('base64')}`;
    const send = async (lines: string[]) => {
      const body = Buffer.concat([...lines.map((l, i) => pkt(`${l}${i === 0 ? '\0report-status' : ''}\n`)), FLUSH]);
      const res = await fetch(`${server.base}/acme/app.git/git-receive-pack`, { method: 'POST', body,
        headers: { 'content-type': 'application/x-git-receive-pack-request', authorization: basic } });
      return res.text();
    };
    const before = await server.diskRefs('acme/app');
    const pushesBefore = await pushCount();
    assert.match(await send([`${head} ${head} refs/heads/main`]), /ng refs\/heads\/main CAIRN_REF_UNCHANGED/);
    assert.match(await send([`${'0'.repeat(40)} ${head} refs/heads/twice`, `${'0'.repeat(40)} ${head} refs/heads/twice`]),
      /ng refs\/heads\/twice CAIRN_REF_DUPLICATE/);
    assert.deepEqual(await server.diskRefs('acme/app'), before);
    assert.equal(await pushCount(), pushesBefore);
  });

  it('re-wires every repository at start, so an old or tampered config gets the hook back', async () => {
    const repoDir = server.repoDir('acme/app');
    await must(git(repoDir, 'config', 'core.hooksPath', '/nonexistent'));
    await must(git(repoDir, 'config', 'receive.denyDeletes', 'false'));
    await server.stop();
    await server.start();
    assert.equal((await must(git(repoDir, 'config', 'core.hooksPath'))).stdout.trim(), path.join(ROOT, 'hooks'));
    assert.equal((await must(git(repoDir, 'config', 'receive.denyDeletes'))).stdout.trim(), 'true');
    const push = await git(work, 'push', repoDir, ':refs/heads/feature');
    assert.notEqual(push.code, 0);
    assert.ok((await server.diskRefs('acme/app')).has('refs/heads/feature'));
  });
});
