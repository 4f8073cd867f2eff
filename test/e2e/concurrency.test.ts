import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { commit, git, must, startTestServer, TestServer, tmpDir } from '../harness';

describe('20 concurrent pushes to one branch from the same base', () => {
  let server: TestServer;
  before(async () => {
    server = await startTestServer();
    await server.repo('acme', 'race');
  });
  after(() => server.stop());

  it('lets exactly one win; the others get a clean non-fast-forward refusal; records match refs; fsck is clean', async () => {
    const url = server.url('acme/race', { user: 'admin', token: server.adminToken });
    const seed = tmpDir();
    await must(git(seed, 'init', '-q', '-b', 'main'));
    await commit(seed, 'base.txt', 'base\n');
    await must(git(seed, 'push', '-q', url, 'main'));
    const clones = await Promise.all(Array.from({ length: 20 }, async (_, i) => {
      const dir = tmpDir();
      await must(git(dir, 'clone', '-q', url, 'c'));
      const id = await commit(`${dir}/c`, `f${i}.txt`, `${i}\n`);
      return { dir: `${dir}/c`, id };
    }));
    const pushes = await Promise.all(clones.map((c) => git(c.dir, 'push', 'origin', 'main')));
    const winners = pushes.filter((p) => p.code === 0);
    assert.equal(winners.length, 1, pushes.map((p) => p.stderr).join('\n---\n'));
    // A loser is refused by the server's hook, or — when the winner had landed before it even asked — by its
    // own git client ("fetch first") before it sends anything. Both are clean; the server must see some.
    const losers = pushes.filter((x) => x.code !== 0);
    let byServer = 0;
    for (const p of losers) {
      if (/remote: CAIRN_NON_FAST_FORWARD refs\/heads\/main: branches only move forward/.test(p.stderr)) byServer++;
      else assert.match(p.stderr, /! \[rejected\] +main -> main \(fetch first\)/, p.stderr);
    }
    assert.ok(byServer > 0, 'some losers reached the server');
    const winner = clones[pushes.findIndex((p) => p.code === 0)];
    const refs = await server.diskRefs('acme/race');
    assert.equal(refs.get('refs/heads/main'), winner.id);
    const ledger = await server.api('GET', '/api/v1/repos/acme/race/pushes', undefined, server.adminToken);
    assert.equal(ledger.body.length, 2, 'the seed push and the winner');
    assert.equal(ledger.body[1].updates[0].new, winner.id);
    assert.equal((await git(server.repoDir('acme/race'), 'fsck', '--strict')).code, 0);
    const verify = await server.cli('admin', 'verify');
    assert.equal(verify.code, 0, verify.stdout + verify.stderr);
  });
});
