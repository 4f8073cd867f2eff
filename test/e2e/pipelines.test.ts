import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { commit, git, must, processesWith, startTestServer, TestServer, tmpDir, waitFor, workTree } from '../harness';

const ENDED = ['succeeded', 'failed', 'cancelled'];
// A duration no other process has, so a build's sleep can be told apart from any other.
const SLEEP = 3000 + Math.floor(Math.random() * 6000);

describe('pipelines: definitions, triggers, runs', () => {
  let server: TestServer;
  const scratch = tmpDir('cairn-pipe-');
  before(async () => {
    // A secret in the server's own environment: no command may see it.
    server = await startTestServer({ CAIRN_WORKERS: '2', CAIRN_RUN_LOG_MAX_BYTES: '100000', CAIRN_TEST_SECRET_CANARY: 'canary-7f3a' });
  });
  after(() => server.stop());

  const admin = () => server.adminToken;
  const put = (repo: string, def: unknown, headers: Record<string, string> = {}, token = admin()) =>
    server.api('PUT', `/api/v1/repos/${repo}/pipeline`, def, token, headers);
  const runs = async (repo: string) => (await server.api('GET', `/api/v1/repos/${repo}/runs?limit=1000`, undefined, admin())).body as any[];
  const runById = async (id: number) => (await server.api('GET', `/api/v1/runs/${id}`, undefined, admin())).body;
  const ended = (id: number, timeoutMs = 30_000) => waitFor(`run ${id} to end`, async () => {
    const r = await runById(id);
    return ENDED.includes(r.state) ? r : null;
  }, timeoutMs);
  const log = async (id: number) => (await fetch(`${server.base}/api/v1/runs/${id}/log`, { headers: { authorization: `Bearer ${admin()}` } })).text();
  const setup = async (name: string, def: unknown) => {
    await server.repo('acme', name);
    const saved = await put(`acme/${name}`, def);
    assert.equal(saved.status, 200, JSON.stringify(saved.body));
    return workTree(server.url(`acme/${name}`, { user: 'admin', token: admin() }));
  };

  it('refuses bad definitions with the bad field named, and saves nothing', async () => {
    await server.repo('acme', 'defs');
    const good = { triggers: { push: ['refs/heads/main'] }, build: { run: 'true' } };
    const cases: [unknown, RegExp][] = [
      [{ ...good, deploy: { run: 'x' } }, /unknown field "deploy"/],
      [{ triggers: { push: ['refs/heads/main'] } }, /missing field "build"/],
      [{ ...good, triggers: { schedule: [{ cron: '61 * * * *', ref: 'refs/heads/main' }] } }, /triggers\.schedule\.0\.cron/],
      [{ ...good, triggers: { schedule: [{ cron: 'every day', ref: 'refs/heads/main' }] } }, /triggers\.schedule\.0\.cron/],
      [{ ...good, triggers: { schedule: [{ cron: '0 2 * * *', ref: 'refs/heads/*' }] } }, /triggers\.schedule\.0\.ref/],
      [{ ...good, triggers: { push: ['main'] } }, /triggers\.push\.0/],
      [{ ...good, triggers: { push: ['refs/heads/../x'] } }, /triggers\.push\.0/],
      [{ ...good, triggers: { push: ['refs/notes/x'] } }, /triggers\.push\.0/],
      [{ ...good, build: { run: 'x'.repeat(20_000) } }, /build\.run/],
      [{ ...good, build: { run: 'true', timeout_s: 0 } }, /build\.timeout_s/],
      [{ ...good, triggers: { upstream: [{ repo: 'acme/nope', release: 'main' }] } }, /triggers\.upstream\.0\.repo: no repository acme\/nope/],
      [{ ...good, publish: { retention: { 'refs/heads/*': '14 days' } } }, /publish\.retention/],
      [{ ...good, triggers: { push: ['refs/heads/main'], tuesday: true } }, /unknown field "triggers\.tuesday"/],
    ];
    for (const [def, message] of cases) {
      const r = await put('acme/defs', def);
      assert.equal(r.status, 422, JSON.stringify(def).slice(0, 200));
      assert.match(r.body.error.message, message);
    }
    assert.equal((await server.api('GET', '/api/v1/repos/acme/defs/pipeline', undefined, admin())).status, 404, 'nothing was saved');
    const yaml = 'triggers:\n  push: ["refs/heads/main", "refs/tags/*"]\n  schedule:\n    - cron: "0 2 * * *"\n      ref: refs/heads/main\nbuild:\n  run: make\n  timeout_s: 60\n';
    const saved = await put('acme/defs', yaml, { 'content-type': 'application/yaml' });
    assert.equal(saved.status, 200);
    const got = await server.api('GET', '/api/v1/repos/acme/defs/pipeline', undefined, admin());
    assert.deepEqual(got.body, { triggers: { push: ['refs/heads/main', 'refs/tags/*'], schedule: [{ cron: '0 2 * * *', ref: 'refs/heads/main' }] },
      build: { run: 'make', timeout_s: 60 } });
    const bad = await put('acme/defs', 'triggers: [oops', { 'content-type': 'application/yaml' });
    assert.equal(bad.status, 400);
    const writer = await server.user('wendy');
    await server.api('PUT', '/api/v1/repos/acme/defs/members/wendy', { role: 'write' }, admin());
    assert.equal((await put('acme/defs', good, {}, writer)).status, 403, 'only repo admins set pipelines');
  });

  it('a push runs build and publish in a scrubbed environment; events say so', async () => {
    const work = await setup('app', { triggers: { push: ['refs/heads/main'] },
      build: { run: 'env | sort > "$CAIRN_OUTPUT_DIR/env.txt"; echo built; cat hello.txt > "$CAIRN_OUTPUT_DIR/hello.txt"' } });
    const id = await commit(work, 'hello.txt', 'hello\n');
    await must(git(work, 'push', '-q', 'origin', 'main'));
    const first = await waitFor('a run', async () => (await runs('acme/app'))[0]);
    assert.deepEqual([first.ref, first.commit, first.release, first.trigger], ['refs/heads/main', id, 'main', 'push']);
    const run = await ended(first.id);
    assert.equal(run.state, 'succeeded', await log(first.id));
    assert.deepEqual(run.stages.map((s: any) => [s.name, s.state]), [['build', 'succeeded'], ['publish', 'succeeded']]);
    assert.ok(run.started_at && run.finished_at);
    const env = await (await fetch(`${server.base}/artifacts/acme/app/main/${run.build_date}/outputs/env.txt`, { headers: { authorization: `Bearer ${admin()}` } })).text();
    const names = env.split('\n').filter(Boolean).map((l) => l.slice(0, l.indexOf('=')));
    const allowed = new Set(['PATH', 'LANG', 'HOME', 'TMPDIR', 'PWD', 'SHLVL', 'OLDPWD', '_', 'CAIRN_REPO', 'CAIRN_REF', 'CAIRN_COMMIT', 'CAIRN_RELEASE', 'CAIRN_OUTPUT_DIR']);
    assert.deepEqual(names.filter((n) => !allowed.has(n)), [], 'only allow-listed variables reach a build');
    assert.ok(!env.includes('canary-7f3a') && !env.includes(server.keysDir) && !/DATABASE_URL|CAIRN_KEYS_DIR|CAIRN_DATA_DIR/.test(env));
    assert.match(env, new RegExp(`^CAIRN_COMMIT=${id}$`, 'm'));
    assert.match(env, /^CAIRN_REPO=acme\/app$/m);
    assert.match(env, /^CAIRN_REF=refs\/heads\/main$/m);
    const home = /^HOME=(.*)$/m.exec(env)![1];
    assert.ok(home.startsWith(server.dataDir) && !fs.existsSync(home), 'HOME is a scratch dir, gone after the run');
    assert.match(await log(first.id), /built/);
    // The artifact tree.
    const base = `${server.base}/artifacts/acme/app/main/${run.build_date}`;
    assert.match(run.build_date, /^\d{8}T\d{6}Z$/);
    assert.equal(await (await fetch(`${base}/outputs/hello.txt`, { headers: { authorization: `Bearer ${admin()}` } })).text(), 'hello\n');
    assert.equal(await (await fetch(`${base}/result`, { headers: { authorization: `Bearer ${admin()}` } })).text(), 'success\n');
    const context = await (await fetch(`${base}/CONTEXT`, { headers: { authorization: `Bearer ${admin()}` } })).text();
    assert.match(context, new RegExp(`^CAIRN_COMMIT=${id}$`, 'm'));
    assert.match(context, /^CAIRN_URL=http:\/\/.*\/acme\/app\.git$/m);
    assert.match(context, /^CAIRN_TREE=[0-9a-f]{40}$/m);
    assert.match(context, /^CAIRN_REF=refs\/heads\/main$/m);
    const latest = await (await fetch(`${server.base}/artifacts/acme/app/main/latest_build/result`, { headers: { authorization: `Bearer ${admin()}` } })).text();
    assert.equal(latest, 'success\n');
    // Events: queued → running → succeeded, then build.published.
    const events = (await server.api('GET', '/api/v1/events?repo=acme/app&limit=1000', undefined, admin())).body as any[];
    const mine = events.filter((e) => e.run_id === first.id);
    assert.deepEqual(mine.map((e) => e.event === 'run.state_changed' ? e.state : e.event), ['queued', 'running', 'succeeded', 'build.published']);
    const published = mine[3];
    assert.equal(published.result, 'success');
    assert.equal(published.url, `${base.replace('127.0.0.1', '127.0.0.1')}/`);
  });

  it('commands run in a sandbox: no server environment, data or keys, and a read-only git dir', async (t) => {
    // .ci/run installs bubblewrap; a machine that cannot run it (a container without user namespaces) runs unsandboxed.
    if (spawnSync('bwrap', ['--ro-bind', '/', '/', '--unshare-pid', '--proc', '/proc', '--dev', '/dev', 'true']).status !== 0) {
      t.skip('bubblewrap cannot run here');
      return;
    }
    const serverPid = server.child!.pid!;
    const checks = [
      `test -e ${JSON.stringify(path.join(server.dataDir, 'cairn.sqlite'))} && echo database`,
      `ls ${JSON.stringify(server.keysDir)} | grep -q . && echo keys`,
      `test -r /proc/${serverPid}/environ && echo server-environ`,
      `grep -q canary-7f3a /proc/*/environ 2>/dev/null && echo canary`,
      // Only the objects of the repository being built are there (read-only), no other repository.
      `test -e ${JSON.stringify(path.join(server.dataDir, 'repos', 'acme', 'app.git'))} && echo other-repo`,
      `touch ${JSON.stringify(path.join(server.dataDir, 'repos', 'acme', 'boxed.git', 'objects', 'x'))} 2>/dev/null && echo objects-writable`,
      '(mkdir -p .git/hooks && echo x > .git/hooks/post-checkout) 2>/dev/null && echo git-writable',
      'git rev-parse HEAD > "$CAIRN_OUTPUT_DIR/head"',
      'echo ok > "$CAIRN_OUTPUT_DIR/done"',
    ].map((c) => `{ ${c}; } >> "$CAIRN_OUTPUT_DIR/leaks" || true`).join('\n');
    const marker = path.join(scratch, 'hook-ran');
    const work = await setup('boxed', { triggers: { push: ['refs/heads/main'] },
      adjust: { run: `(mkdir -p .git/hooks && printf '#!/bin/sh\\ntouch ${marker}\\n' > .git/hooks/post-checkout && chmod +x .git/hooks/post-checkout; git config core.fsmonitor "touch ${marker}") 2>/dev/null; echo changed >> README` },
      build: { run: checks } });
    const id = await commit(work, 'README', 'hi\n');
    await must(git(work, 'push', '-q', 'origin', 'main'));
    const run = await ended((await waitFor('run', async () => (await runs('acme/boxed'))[0])).id);
    assert.equal(run.state, 'succeeded', await log(run.id));
    const out = (f: string) => fetch(`${server.base}/artifacts/acme/boxed/main/${run.build_date}/outputs/${f}`, { headers: { authorization: `Bearer ${admin()}` } }).then((r) => r.text());
    assert.equal(await out('leaks'), '', 'nothing of the server reachable');
    assert.equal((await out('head')).trim(), run.adjust.commit, 'git works, read-only, on the adjusted commit');
    assert.ok(run.adjust.tag && run.adjust.commit !== id);
    assert.ok(!fs.existsSync(marker), 'nothing the adjust command planted ran');
  });

  it('a failing build is published as fail and latest_build stays on the last success', async () => {
    const work = await setup('flaky', { triggers: { push: ['refs/heads/**'] }, build: { run: 'test -f ok && echo fine > "$CAIRN_OUTPUT_DIR/x"' } });
    await commit(work, 'ok', '1\n');
    await must(git(work, 'push', '-q', 'origin', 'main'));
    const good = await ended((await waitFor('run 1', async () => (await runs('acme/flaky'))[0])).id);
    assert.equal(good.state, 'succeeded');
    await must(git(work, 'rm', '-q', 'ok'));
    await must(git(work, 'commit', '-q', '-m', 'break'));
    await must(git(work, 'push', '-q', 'origin', 'main'));
    const bad = await ended((await waitFor('run 2', async () => (await runs('acme/flaky'))[1])).id);
    assert.equal(bad.state, 'failed');
    assert.match(bad.reason, /build exited with code 1/);
    assert.deepEqual(bad.stages.map((s: any) => s.state), ['failed', 'succeeded']);
    const auth = { headers: { authorization: `Bearer ${admin()}` } };
    assert.equal(await (await fetch(`${server.base}/artifacts/acme/flaky/main/${bad.build_date}/result`, auth)).text(), 'fail\n');
    assert.match(await (await fetch(`${server.base}/artifacts/acme/flaky/main/${bad.build_date}/logs/run.log`, auth)).text(), /build exited with code 1|build: test -f ok/);
    const listing = await (await fetch(`${server.base}/artifacts/acme/flaky/main/`, { headers: { ...auth.headers, accept: 'application/json' } })).json() as any;
    assert.ok(listing.entries.some((e: any) => e.name === 'latest_build'));
    assert.equal(await (await fetch(`${server.base}/artifacts/acme/flaky/main/latest_build/result`, auth)).text(), 'success\n');
    assert.equal(fs.readlinkSync(path.join(server.dataDir, 'artifacts', 'acme', 'flaky', 'main', 'latest_build')), good.build_date);
  });

  it('adjust commits the change, tags it deterministically through the ledger, and the build sees it', async () => {
    const work = await setup('adj', { triggers: { push: ['refs/heads/main'] },
      adjust: { run: 'sed -i s/1.0-SNAPSHOT/1.0.redhat-1/ version.txt' },
      build: { run: 'cp version.txt "$CAIRN_OUTPUT_DIR/"; echo "$CAIRN_COMMIT" > "$CAIRN_OUTPUT_DIR/commit"' } });
    const input = await commit(work, 'version.txt', '1.0-SNAPSHOT\n');
    await must(git(work, 'push', '-q', 'origin', 'main'));
    const run = await ended((await waitFor('run', async () => (await runs('acme/adj'))[0])).id);
    assert.equal(run.state, 'succeeded', await log(run.id));
    assert.deepEqual(run.stages.map((s: any) => s.name), ['adjust', 'build', 'publish']);
    const adj = run.adjust;
    assert.match(adj.tag, new RegExp(`^cairn-adjust-${input.slice(0, 12)}-${adj.tree.slice(0, 12)}$`));
    assert.deepEqual(adj.changed_files, ['version.txt']);
    const refs = await server.diskRefs('acme/adj');
    assert.equal(refs.get(`refs/tags/${adj.tag}`), adj.commit);
    assert.equal((await must(git(server.repoDir('acme/adj'), 'rev-parse', `${adj.commit}^`))).stdout.trim(), input);
    assert.equal((await must(git(server.repoDir('acme/adj'), 'show', `${adj.commit}:version.txt`))).stdout, '1.0.redhat-1\n');
    const auth = { headers: { authorization: `Bearer ${admin()}` } };
    const out = `${server.base}/artifacts/acme/adj/main/${run.build_date}`;
    assert.equal(await (await fetch(`${out}/outputs/version.txt`, auth)).text(), '1.0.redhat-1\n');
    assert.equal((await (await fetch(`${out}/outputs/commit`, auth)).text()).trim(), adj.commit);
    assert.match(await (await fetch(`${out}/CONTEXT`, auth)).text(), new RegExp(`^CAIRN_ADJUSTED_TAG=${adj.tag}$`, 'm'));
    // The tag is in the ledger as Cairn's own push.
    const pushes = (await server.api('GET', '/api/v1/repos/acme/adj/pushes', undefined, admin())).body as any[];
    const internal = pushes.filter((p) => p.transport === 'internal');
    assert.equal(internal.length, 1);
    assert.deepEqual(internal[0].updates.map((u: any) => [u.ref, u.new]), [[`refs/tags/${adj.tag}`, adj.commit]]);
    // The same adjustment again returns the same tag and writes nothing.
    const again = await server.api('POST', '/api/v1/repos/acme/adj/runs', { ref: 'main' }, admin());
    assert.equal(again.status, 201);
    const second = await ended(again.body.id);
    assert.equal(second.state, 'succeeded', await log(second.id));
    assert.deepEqual(second.adjust, adj);
    assert.equal(((await server.api('GET', '/api/v1/repos/acme/adj/pushes', undefined, admin())).body as any[]).filter((p) => p.transport === 'internal').length, 1);
    // History protection covers the adjust tag: nobody moves it.
    await must(git(work, 'fetch', '-q', 'origin', `refs/tags/${adj.tag}:refs/tags/${adj.tag}`));
    const moved = await git(work, 'push', '--force', 'origin', `HEAD:refs/tags/${adj.tag}`);
    assert.notEqual(moved.code, 0);
    assert.match(moved.stderr, /CAIRN_TAG_IMMUTABLE/);
    // Internal tag writes trigger nothing: exactly the two runs.
    assert.equal((await runs('acme/adj')).length, 2);
  });

  it('triggers arriving during a build coalesce into one pending run for the newest commit', async () => {
    const gate = path.join(scratch, 'gate');
    const work = await setup('busy', { triggers: { push: ['refs/heads/main'] },
      build: { run: `while [ ! -e ${JSON.stringify(gate)} ]; do sleep 0.05; done; git rev-parse HEAD > "$CAIRN_OUTPUT_DIR/built"` } });
    await commit(work, 'a', '0\n');
    await must(git(work, 'push', '-q', 'origin', 'main'));
    const first = await waitFor('first run running', async () => (await runs('acme/busy')).find((r) => r.state === 'running'));
    let last = '';
    for (let i = 1; i <= 6; i++) {
      last = await commit(work, 'a', `${i}\n`);
      await must(git(work, 'push', '-q', 'origin', 'main'));
    }
    const manual = await server.api('POST', '/api/v1/repos/acme/busy/runs', { ref: 'refs/heads/main' }, admin());
    assert.equal(manual.status, 200, 'a manual run joins the waiting one');
    const all = await waitFor('the pushes to coalesce', async () => {
      const list = await runs('acme/busy');
      return list.length === 2 && list[1].commit === last ? list : null;
    });
    assert.equal(manual.body.id, all[1].id);
    assert.deepEqual(all.map((r) => r.state), ['running', 'queued']);
    fs.writeFileSync(gate, '');
    assert.equal((await ended(first.id)).state, 'succeeded');
    const second = await ended(all[1].id);
    assert.equal(second.state, 'succeeded');
    assert.equal(second.commit, last);
    assert.equal((await runs('acme/busy')).length, 2, JSON.stringify(await runs('acme/busy'), null, 1) + 'six pushes and a manual request made one more run, not seven');
  });

  it('cancel and timeout kill the whole process group; a huge log is capped and the run still succeeds', async () => {
    const work = await setup('long', { triggers: { push: ['refs/heads/main', 'refs/heads/slow', 'refs/heads/loud'] },
      build: { run: `case "$CAIRN_REF" in
        refs/heads/main) sleep ${SLEEP} & echo started; wait ;;
        refs/heads/slow) sleep ${SLEEP + 1} & wait ;;
        refs/heads/loud) head -c 20000000 /dev/zero | tr '\\0' x; echo; echo done > "$CAIRN_OUTPUT_DIR/ok" ;;
      esac`, timeout_s: 3 } });
    await commit(work, 'f', '1\n');
    await must(git(work, 'push', '-q', 'origin', 'main'));
    const run = await waitFor('running', async () => (await runs('acme/long')).find((r) => r.state === 'running'));
    await waitFor('the build to start its child', async () => processesWith(`sleep ${SLEEP}`).length > 0);
    // Streaming the log while the run goes on.
    const follow = await fetch(`${server.base}/api/v1/runs/${run.id}/log?follow=true`, { headers: { authorization: `Bearer ${admin()}` } });
    const reader = follow.body!.getReader();
    let streamed = '';
    while (!streamed.includes('started')) streamed += new TextDecoder().decode((await reader.read()).value);
    const cancel = await server.api('POST', `/api/v1/runs/${run.id}/cancel`, undefined, admin());
    assert.equal(cancel.status, 200);
    const done = await ended(run.id);
    assert.equal(done.state, 'cancelled');
    for (;;) { const chunk = await reader.read(); if (chunk.done) break; streamed += new TextDecoder().decode(chunk.value); }
    assert.match(streamed, /run cancelled/, 'the followed log ends when the run does');
    await waitFor('the background child to be killed', async () => processesWith(`sleep ${SLEEP}`).length === 0);
    assert.equal((await server.api('POST', `/api/v1/runs/${run.id}/cancel`, undefined, admin())).status, 409);
    const cancelEvents = ((await server.api('GET', '/api/v1/events?repo=acme/long&limit=1000', undefined, admin())).body as any[])
      .filter((e) => e.run_id === run.id && e.event === 'build.published');
    assert.equal(cancelEvents.length, 0, 'a cancelled run publishes nothing');

    await must(git(work, 'push', '-q', 'origin', 'main:slow'));
    const slow = await ended((await waitFor('slow run', async () => (await runs('acme/long')).find((r) => r.ref === 'refs/heads/slow'))).id);
    assert.equal(slow.state, 'failed');
    assert.match(slow.reason, /build timed out after 3 s/);
    await waitFor('the timed-out child to be killed', async () => processesWith(`sleep ${SLEEP + 1}`).length === 0);

    await must(git(work, 'push', '-q', 'origin', 'main:loud'));
    const loud = await ended((await waitFor('loud run', async () => (await runs('acme/long')).find((r) => r.ref === 'refs/heads/loud'))).id, 60_000);
    assert.equal(loud.state, 'succeeded');
    const text = await log(loud.id);
    assert.ok(text.length < 101_000, `log capped (${text.length} bytes)`);
    assert.match(text, /log capped at 100000 bytes: \d+ more bytes were dropped/);
  });

  it('a pool of CAIRN_WORKERS runs at once; the next waits for a free worker', async () => {
    const gate = path.join(scratch, 'pool-gate');
    const def = { triggers: { push: ['refs/heads/main'] }, build: { run: `while [ ! -e ${JSON.stringify(gate)} ]; do sleep 0.05; done` } };
    const works = [];
    for (const name of ['p1', 'p2', 'p3']) works.push(await setup(name, def));
    for (const work of works) await must(git(work, 'push', '-q', 'origin', 'main'));
    const states = async () => Promise.all(['p1', 'p2', 'p3'].map(async (n) => (await runs(`acme/${n}`))[0]?.state));
    const seen = await waitFor('two running, one waiting', async () => {
      const s = await states();
      return s.filter((x) => x === 'running').length === 2 && s.filter((x) => x === 'queued').length === 1 ? s : null;
    });
    await new Promise((r) => setTimeout(r, 700));
    assert.deepEqual((await states()).sort(), [...seen].sort(), 'the third run waits while both workers are busy');
    fs.writeFileSync(gate, '');
    await waitFor('all three to finish', async () => (await states()).every((x) => x === 'succeeded'), 30_000);
  });

  it('runs of one repo are private to its readers; the log and cancel need access', async () => {
    await server.repo('acme', 'secret');
    const writer = await server.user('sam');
    const reader = await server.user('rita');
    const stranger = await server.user('olga');
    await server.api('PUT', '/api/v1/repos/acme/secret/members/sam', { role: 'write' }, admin());
    await server.api('PUT', '/api/v1/repos/acme/secret/members/rita', { role: 'read' }, admin());
    await put('acme/secret', { triggers: { manual: true }, build: { run: 'sleep 30' } });
    const work = await workTree(server.url('acme/secret', { user: 'admin', token: admin() }));
    await must(git(work, 'push', '-q', 'origin', 'main'));
    assert.equal((await server.api('POST', '/api/v1/repos/acme/secret/runs', { ref: 'main' }, reader)).status, 403);
    assert.equal((await server.api('POST', '/api/v1/repos/acme/secret/runs', { ref: 'nope' }, writer)).status, 422);
    const started = await server.api('POST', '/api/v1/repos/acme/secret/runs', { ref: 'main' }, writer);
    assert.equal(started.status, 201);
    assert.equal(started.body.trigger, 'manual');
    assert.equal((await server.api('GET', '/api/v1/repos/acme/secret/pipeline', undefined, stranger)).status, 404, 'the definition is as private as the repo');
    assert.equal((await server.api('GET', '/api/v1/repos/acme/secret/pipeline')).status, 401);
    assert.equal((await server.api('GET', '/api/v1/repos/acme/secret/pipeline', undefined, reader)).status, 200);
    assert.equal((await server.api('GET', '/api/v1/repos/acme/secret/runs', undefined, stranger)).status, 404);
    assert.equal((await server.api('GET', `/api/v1/runs/${started.body.id}`, undefined, stranger)).status, 404);
    assert.equal((await server.api('GET', `/api/v1/runs/${started.body.id}`)).status, 401, 'anonymous: 401, as for the repo itself');
    assert.equal((await server.api('GET', `/api/v1/runs/${started.body.id}`, undefined, reader)).status, 200);
    assert.equal((await fetch(`${server.base}/api/v1/runs/${started.body.id}/log`, { headers: { authorization: `Bearer ${stranger}` } })).status, 404);
    assert.equal((await server.api('POST', `/api/v1/runs/${started.body.id}/cancel`, undefined, reader)).status, 403);
    const cancelled = await server.api('POST', `/api/v1/runs/${started.body.id}/cancel`, undefined, writer);
    assert.equal(cancelled.status, 200);
    assert.equal((await ended(started.body.id)).state, 'cancelled');
    assert.equal((await server.api('GET', '/api/v1/runs/999999', undefined, admin())).status, 404);
    assert.equal((await server.api('GET', '/api/v1/repos/acme/secret/runs?state=bogus', undefined, admin())).status, 422);
  });

  it('schedules fire for their ref; an upstream publish starts a level-2 build with its outputs; a first push is repo_created', async () => {
    const work = await setup('base', { triggers: { push: ['refs/heads/main'] }, build: { run: 'echo lib-v1 > "$CAIRN_OUTPUT_DIR/lib.txt"' } });
    await server.repo('acme', 'downstream');
    const def = { triggers: { upstream: [{ repo: 'acme/base', release: 'main' }], repo_created: true, schedule: [{ cron: '*/2 * * * * *', ref: 'refs/heads/main' }] },
      build: { run: 'if [ -n "$CAIRN_UPSTREAM_DIR" ]; then cp "$CAIRN_UPSTREAM_DIR/lib.txt" "$CAIRN_OUTPUT_DIR/"; fi' } };
    assert.equal((await put('acme/downstream', def)).status, 200);
    // The downstream repo is still empty: its schedule and the upstream trigger have nothing to build yet.
    const down = await workTree(server.url('acme/downstream', { user: 'admin', token: admin() }));
    await must(git(down, 'push', '-q', 'origin', 'main'));
    const created = await waitFor('repo_created run', async () => (await runs('acme/downstream')).find((r) => r.trigger === 'repo_created'));
    assert.equal(created.ref, 'refs/heads/main');
    await ended(created.id);
    const scheduled = await waitFor('a scheduled run', async () => (await runs('acme/downstream')).find((r) => r.trigger === 'schedule'), 20_000);
    assert.equal(scheduled.ref, 'refs/heads/main');
    // Switch the schedule off, then publish upstream.
    assert.equal((await put('acme/downstream', { ...def, triggers: { upstream: def.triggers.upstream } })).status, 200);
    await waitFor('schedules to settle', async () => (await runs('acme/downstream')).every((r) => ENDED.includes(r.state)), 20_000);
    await commit(work, 'x', '1\n');
    await must(git(work, 'push', '-q', 'origin', 'main'));
    const level2 = await waitFor('upstream run', async () => (await runs('acme/downstream')).find((r) => r.trigger === 'upstream'), 20_000);
    const done = await ended(level2.id);
    assert.equal(done.state, 'succeeded', await log(level2.id));
    assert.equal(done.upstream.repo, 'acme/base');
    assert.equal(done.upstream.release, 'main');
    const lib = await fetch(`${server.base}/artifacts/acme/downstream/main/${done.build_date}/outputs/lib.txt`, { headers: { authorization: `Bearer ${admin()}` } });
    assert.equal(await lib.text(), 'lib-v1\n');
  });
});
