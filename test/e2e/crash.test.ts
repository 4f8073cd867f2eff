import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { commit, git, must, startTestServer, TestServer, tmpDir } from '../harness';

/** Promise 3: every accepted ref update is recorded exactly once, even when the server is killed mid-push. */
describe('SIGKILL while pushes are in flight', () => {
  let server: TestServer;
  const repos = ['acme/k0', 'acme/k1', 'acme/k2'];
  before(async () => {
    server = await startTestServer();
    for (const r of repos) await server.repo('acme', r.split('/')[1]);
  });
  after(() => server.stop());

  it('loses and doubles nothing: after restart every ref on disk has its one record, and fsck is clean', async (t) => {
    let settledAtStart = 0;
    const confirmed: { repo: string; ref: string; id: string }[] = [];
    let round = 0;
    // Most rounds kill the server the moment it allows a push (between its verdict and git applying it:
    // the window that matters); the others at a fixed delay, wherever that lands.
    for (const killAt of ['verdict', 'verdict', 'verdict', 120, 'verdict', 320]) {
      round++;
      // The work is made first, so the kill lands among pushes, not among commits.
      const work = await Promise.all(Array.from({ length: 8 }, async (_, i) => {
        const dir = tmpDir();
        await must(git(dir, 'init', '-q', '-b', 'main'));
        // Some weight, so that some packs are still moving when the kill lands.
        const id = await commit(dir, 'blob.bin', crypto.randomBytes(32 * 1024 * (1 + (i % 4))).toString('base64'), `round ${round} job ${i}`);
        return { dir, id, repo: repos[i % repos.length], ref: `refs/heads/r${round}-j${i}` };
      }));
      const child = server.child!;
      const killed = new Promise<void>((resolve) => {
        if (typeof killAt === 'number') { setTimeout(() => { child.kill('SIGKILL'); resolve(); }, killAt); return; }
        child.stderr!.on('data', (b: Buffer) => { if (b.toString().includes('push allowed')) { child.kill('SIGKILL'); resolve(); } });
      });
      const jobs = work.map(async ({ dir, id, repo, ref }, i) => {
        await new Promise((r) => setTimeout(r, i * 15));
        const push = await git(dir, 'push', server.url(repo, { user: 'admin', token: server.adminToken }), `HEAD:${ref}`);
        if (push.code === 0) confirmed.push({ repo, ref, id });
      });
      await killed;
      await server.stop('SIGKILL');
      await Promise.all(jobs);
      await server.start();
      settledAtStart += Number(/"settled":(\d+)/.exec(server.stderr)?.[1] ?? 0);
    }
    t.diagnostic(`pushes confirmed to clients: ${confirmed.length}; pushes settled by a restart: ${settledAtStart}`);
    assert.ok(settledAtStart >= 4, 'the kills landed between a verdict and its settling');
    for (const repo of repos) {
      const refs = await server.diskRefs(repo);
      const ledger = (await server.api('GET', `/api/v1/repos/${repo}/pushes?limit=1000`, undefined, server.adminToken)).body as
        { updates: { ref: string; new: string }[] }[];
      const recorded = ledger.flatMap((p) => p.updates.map((u) => `${u.ref} ${u.new}`));
      assert.equal(new Set(recorded).size, recorded.length, `${repo}: no update recorded twice`);
      assert.deepEqual(recorded.sort(), [...refs].map(([ref, id]) => `${ref} ${id}`).sort(), `${repo}: records equal refs on disk`);
      // Every ledger entry has exactly one push event, written in the same transaction.
      const events = (await server.api('GET', `/api/v1/events?repo=${repo}&limit=1000`, undefined, server.adminToken)).body as
        { event: string; push_id: number }[];
      const ids = (await server.api('GET', `/api/v1/repos/${repo}/pushes?limit=1000`, undefined, server.adminToken)).body.map((p: { id: number }) => p.id);
      assert.deepEqual(events.filter((e) => e.event === 'push').map((e) => e.push_id), ids, `${repo}: one push event per ledger entry`);
      const fsck = await git(server.repoDir(repo), 'fsck', '--strict');
      assert.equal(fsck.code, 0, fsck.stderr);
    }
    for (const c of confirmed) {
      assert.equal((await server.diskRefs(c.repo)).get(c.ref), c.id, `a push the client saw succeed is on disk: ${c.ref}`);
    }
    const verify = await server.cli('admin', 'verify');
    assert.equal(verify.code, 0, verify.stdout + verify.stderr);
    assert.equal(verify.stdout.trim(), 'ok');
    // And pushing still works after all that.
    const dir = tmpDir();
    await must(git(dir, 'init', '-q', '-b', 'main'));
    await commit(dir, 'after.txt', 'after\n');
    assert.equal((await git(dir, 'push', server.url('acme/k0', { user: 'admin', token: server.adminToken }), 'HEAD:refs/heads/after')).code, 0);
  });
});
