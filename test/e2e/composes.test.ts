import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { commit, git, must, run, startTestServer, TestServer, tmpDir, waitFor, workTree } from '../harness';

describe('composes, ODCS-style', () => {
  let server: TestServer;
  let lib = '';
  let dev = ''; let qa = ''; let nobody = ''; let stranger = '';
  const admin = () => server.adminToken;
  before(async () => {
    server = await startTestServer({ CAIRN_COMPOSE_ALLOWED_CLIENTS: JSON.stringify({ users: { dev: ['git'] }, groups: { qa: ['build', 'git', 'compose'] } }),
      CAIRN_COMPOSE_DEFAULT_TTL: '600', CAIRN_COMPOSE_MAX_TTL: '3600', CAIRN_COMPOSE_WORKERS: '1' });
    await server.repo('acme', 'lib');
    await server.repo('acme', 'app');
    await server.repo('qa', 'tests');
    lib = await workTree(server.url('acme/lib', { user: 'admin', token: admin() }));
    await commit(lib, 'src/lib.c', 'int lib(void) { return 1; }\n');
    await must(git(lib, 'tag', '-a', '-m', 'v1', 'v1'));
    await must(git(lib, 'push', '-q', 'origin', 'main', 'v1'));
    assert.equal((await server.api('PUT', '/api/v1/repos/acme/app/pipeline', { triggers: { push: ['refs/heads/main'] },
      build: { run: 'mkdir -p "$CAIRN_OUTPUT_DIR/bin" && head -c 50000 /dev/urandom > "$CAIRN_OUTPUT_DIR/bin/app" && echo 1.0 > "$CAIRN_OUTPUT_DIR/VERSION"' } }, admin())).status, 200);
    const app = await workTree(server.url('acme/app', { user: 'admin', token: admin() }));
    await commit(app, 'main.c', 'int main() {}\n');
    await must(git(app, 'push', '-q', 'origin', 'main'));
    await waitFor('the app build', async () => ((await server.api('GET', '/api/v1/repos/acme/app/runs', undefined, admin())).body as any[])[0]?.state === 'succeeded', 30_000);
    dev = await server.user('dev');
    qa = await server.user('qa-bot');
    nobody = await server.user('nobody');
    stranger = await server.user('stranger');
    await server.api('PUT', '/api/v1/tenants/qa/members/qa-bot', { role: 'read' }, admin());
    for (const u of ['dev', 'qa-bot']) await server.api('PUT', `/api/v1/tenants/acme/members/${u}`, { role: 'read' }, admin());
  });
  after(() => server.stop());

  const odcs = async (method: string, p: string, body?: unknown, token?: string) => {
    const res = await fetch(`${server.base}/api/1/${p}`, { method, headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), 'content-type': 'application/json' },
      body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body) });
    return { status: res.status, body: await res.json() as any };
  };
  const submit = (source: Record<string, unknown>, token = admin(), extra: Record<string, unknown> = {}) => odcs('POST', 'composes/', { source, ...extra }, token);
  const settled = (id: number) => waitFor(`compose ${id}`, async () => {
    const c = (await odcs('GET', `composes/${id}`, undefined, admin())).body;
    return ['done', 'failed', 'removed'].includes(c.state_name) ? c : null;
  }, 30_000);
  const file = async (url: string, token = admin()) => Buffer.from(await (await fetch(url, { headers: { authorization: `Bearer ${token}` } })).arrayBuffer());
  const diskOf = (c: any) => path.join(server.dataDir, 'composes', new URL(c.toplevel_url).pathname.split('/')[2]);

  it('a git compose pins refs to commits and serves tarballs with a manifest of sha256s and origins', async () => {
    const created = await submit({ type: 'git', source: 'acme/lib#main acme/lib#v1 acme/lib#main' });
    assert.equal(created.status, 200);
    assert.ok(Number.isInteger(created.body.id));
    assert.deepEqual([created.body.state, created.body.state_name, created.body.pins], [0, 'wait', null]);
    assert.equal(created.body.source, 'acme/lib#main acme/lib#v1', 'entries de-duplicated');
    const done = await settled(created.body.id);
    assert.equal(done.state_name, 'done', done.state_reason);
    const head = (await must(git(lib, 'rev-parse', 'HEAD'))).stdout.trim();
    assert.deepEqual(done.pins.map((p: any) => [p.type, p.repo, p.ref, p.commit]).sort(),
      [['git', 'acme/lib', 'refs/heads/main', head], ['git', 'acme/lib', 'refs/tags/v1', head]]);
    const manifest = JSON.parse((await file(`${done.toplevel_url}manifest.json`)).toString());
    assert.deepEqual(manifest.files.map((f: any) => f.path).sort(), ['git/acme/lib/heads/main.tar.gz', 'git/acme/lib/tags/v1.tar.gz']);
    for (const f of manifest.files) {
      const bytes = await file(`${done.toplevel_url}${f.path}`);
      assert.equal(crypto.createHash('sha256').update(bytes).digest('hex'), f.sha256);
      assert.equal(f.origin.commit, head);
      const tmp = path.join(tmpDir('cairn-tar-'), 'x.tar.gz');
      fs.writeFileSync(tmp, bytes);
      assert.match((await must(run('tar', ['-tzf', tmp]))).stdout, /lib\/src\/lib\.c/);
    }
    const events = ((await server.api('GET', '/api/v1/events?repo=acme/lib&limit=1000', undefined, admin())).body as any[])
      .filter((e) => e.event === 'compose.state_changed' && e.compose.id === created.body.id);
    assert.deepEqual(events.map((e) => e.compose.state_name), ['wait', 'generating', 'done']);
  });

  it('an identical compose reuses the content; no_reuse makes its own, hard-linked; build outputs are hard links into the artifact tree', async () => {
    const first = await settled((await submit({ type: 'git', source: 'acme/lib#v1' })).body.id);
    const again = await settled((await submit({ type: 'git', source: 'acme/lib#refs/tags/v1' })).body.id);
    assert.equal(again.state_name, 'done');
    assert.equal(again.toplevel_url, first.toplevel_url, 'the URL names the earlier compose');
    assert.ok(!fs.existsSync(path.join(server.dataDir, 'composes', `odcs-${again.id}`)), 'no files of its own');
    const own = await settled((await submit({ type: 'git', source: 'acme/lib#v1' }, admin(), { flags: ['no_reuse'] })).body.id);
    assert.notEqual(own.toplevel_url, first.toplevel_url);
    const a = fs.statSync(path.join(diskOf(first), 'git/acme/lib/tags/v1.tar.gz'));
    const b = fs.statSync(path.join(diskOf(own), 'git/acme/lib/tags/v1.tar.gz'));
    assert.equal(a.ino, b.ino, 'the same tarball, linked twice');
    const build = await settled((await submit({ type: 'build', source: 'acme/app#main' })).body.id);
    assert.equal(build.state_name, 'done', build.state_reason);
    const run0 = ((await server.api('GET', '/api/v1/repos/acme/app/runs', undefined, admin())).body as any[])[0];
    assert.deepEqual(build.pins, [{ type: 'build', repo: 'acme/app', release: 'main', build_date: run0.build_date }]);
    const linked = fs.statSync(path.join(diskOf(build), 'builds/acme/app/main', run0.build_date, 'bin/app'));
    const original = fs.statSync(path.join(server.dataDir, 'artifacts/acme/app/main', run0.build_date, 'outputs/bin/app'));
    assert.equal(linked.ino, original.ino);
    const manifest = JSON.parse((await file(`${build.toplevel_url}manifest.json`)).toString());
    const entry = manifest.files.find((f: any) => f.path.endsWith('bin/app'));
    assert.deepEqual(entry.origin, { type: 'build', repo: 'acme/app', release: 'main', build_date: run0.build_date, path: 'outputs/bin/app' });
    // A compose of composes: the union of their pins.
    const merged = await settled((await submit({ type: 'compose', source: `${first.id} ${build.id}` })).body.id);
    assert.equal(merged.state_name, 'done', merged.state_reason);
    assert.equal(merged.pins.length, 2);
  });

  it('a removed compose is made again byte for byte from its pins after the branch moved; PATCH on done only extends', async () => {
    const c = await settled((await submit({ type: 'git', source: 'acme/lib#main' }, admin(), { seconds_to_live: 1000 })).body.id);
    const before = await file(`${c.toplevel_url}git/acme/lib/heads/main.tar.gz`);
    const longer = await odcs('PATCH', `composes/${c.id}`, { seconds_to_live: 3000 }, admin());
    assert.equal(longer.status, 200);
    assert.equal(longer.body.id, c.id);
    assert.ok(longer.body.time_to_expire > c.time_to_expire);
    const shorter = await odcs('PATCH', `composes/${c.id}`, { seconds_to_live: 10 }, admin());
    assert.equal(shorter.body.time_to_expire, longer.body.time_to_expire, 'never shortened');
    await commit(lib, 'src/lib.c', 'int lib(void) { return 2; }\n');
    await must(git(lib, 'push', '-q', 'origin', 'main'));
    assert.equal((await odcs('DELETE', `composes/${c.id}`, undefined, dev)).status, 403, 'only admins remove a done compose');
    const del = await odcs('DELETE', `composes/${c.id}`, undefined, admin());
    assert.equal(del.status, 202);
    assert.match(del.body.message, /has been accepted/);
    const removed = await waitFor('removal', async () => { const x = (await odcs('GET', `composes/${c.id}`, undefined, admin())).body; return x.state_name === 'removed' ? x : null; });
    assert.match(removed.state_reason, /Removed by admin\.$/);
    assert.ok(removed.time_removed);
    assert.ok(!fs.existsSync(path.join(server.dataDir, 'composes', `odcs-${c.id}`)), 'its files are gone');
    const again = await odcs('PATCH', `composes/${c.id}`, {}, admin());
    assert.equal(again.status, 200);
    assert.notEqual(again.body.id, c.id);
    assert.deepEqual(again.body.pins, c.pins, 'the same pins, though main has moved');
    const remade = await settled(again.body.id);
    assert.equal(remade.state_name, 'done', remade.state_reason);
    assert.ok((await file(`${remade.toplevel_url}git/acme/lib/heads/main.tar.gz`)).equals(before), 'byte for byte');
    const fresh = await settled((await submit({ type: 'git', source: 'acme/lib#main' })).body.id);
    assert.notEqual(fresh.pins[0].commit, c.pins[0].commit, 'a new request pins the branch as it is now');
  });

  it('expired composes are swept within seconds; a directory a live compose uses stays', async () => {
    const short = await settled((await submit({ type: 'git', source: 'acme/app#main' }, admin(), { seconds_to_live: 2 })).body.id);
    assert.equal(short.state_name, 'done', short.state_reason);
    const gone = await waitFor('expiry', async () => { const x = (await odcs('GET', `composes/${short.id}`, undefined, admin())).body; return x.state_name === 'removed' ? x : null; }, 10_000);
    assert.match(gone.state_reason, /Compose is expired\.$/);
    assert.ok(Date.parse(gone.time_removed) - Date.parse(gone.time_to_expire) < 5000);
    assert.equal((await fetch(`${short.toplevel_url}manifest.json`, { headers: { authorization: `Bearer ${admin()}` } })).status, 404);
    // A base removed while its reuser lives: the files stay for the reuser.
    const base = await settled((await submit({ type: 'build', source: 'acme/app#main' }, admin(), { flags: ['no_reuse'] })).body.id);
    const user = await settled((await submit({ type: 'build', source: 'acme/app#main' })).body.id);
    assert.equal(user.toplevel_url, base.toplevel_url);
    await odcs('DELETE', `composes/${base.id}`, undefined, admin());
    await waitFor('the base to be removed', async () => (await odcs('GET', `composes/${base.id}`, undefined, admin())).body.state_name === 'removed');
    await new Promise((r) => setTimeout(r, 2500));
    assert.equal((await file(`${user.toplevel_url}manifest.json`)).length > 0, true, 'the reuser still serves its files');
  });

  it('nothing leaks: path tricks in releases, events on a public repo, an owner whose access was revoked', async () => {
    for (const source of ['acme/app#../../qa/tests/main', 'acme/app#main/../../x', 'acme/app#.hidden', 'acme/app#main/']) {
      const r = await submit({ type: 'build', source }, admin());
      assert.equal(r.status, 400, source);
      assert.match(r.body.message, /release must be a branch name or tags\/NAME/);
    }
    await server.repo('pub', 'open', { public: true });
    const open = await workTree(server.url('pub/open', { user: 'admin', token: admin() }));
    await must(git(open, 'push', '-q', 'origin', 'main'));
    const both = await settled((await submit({ type: 'git', source: 'pub/open#main acme/lib#main' })).body.id);
    assert.equal(both.state_name, 'done', both.state_reason);
    const seen = ((await server.api('GET', '/api/v1/events?repo=pub/open&limit=1000')).body as any[])
      .filter((e) => e.event === 'compose.state_changed' && e.compose.id === both.id);
    assert.ok(seen.length >= 3, 'anonymous readers of the public repo hear of the compose');
    assert.ok(!JSON.stringify(seen).includes('acme/lib'), 'but nothing of the private repo in it');
    assert.equal((await odcs('GET', `composes/${both.id}`)).status, 404, 'nor the compose itself');
    // dev reads acme (a tenant role) and made a compose of acme/lib; without the role, it is gone for dev too.
    const devs = await settled((await submit({ type: 'git', source: 'acme/lib#main' }, dev, { flags: ['no_reuse'] })).body.id);
    assert.equal((await odcs('GET', `composes/${devs.id}`, undefined, dev)).status, 200);
    await server.api('DELETE', '/api/v1/tenants/acme/members/dev', undefined, admin());
    try {
      assert.equal((await odcs('GET', `composes/${devs.id}`, undefined, dev)).status, 404);
      assert.equal((await fetch(`${devs.toplevel_url}manifest.json`, { headers: { authorization: `Bearer ${dev}` } })).status, 404);
      const again = await settled((await submit({ type: 'compose', source: String(devs.id) }, admin(), { flags: ['no_reuse'] })).body.id);
      assert.equal(again.state_name, 'done', 'an admin still can');
      const viaCompose = (await odcs('POST', 'composes/', { source: { type: 'git', source: 'acme/lib#main' } }, dev)).body;
      const failed = await settled(viaCompose.id);
      assert.equal(failed.state_name, 'failed', 'nor can dev pin it anew');
      assert.match(failed.state_reason, /no repository acme\/lib/);
    } finally {
      await server.api('PUT', '/api/v1/tenants/acme/members/dev', { role: 'read' }, admin());
    }
  });

  it('bad input gets ODCS\'s error envelope and creates nothing', async () => {
    const count = async () => (await odcs('GET', 'composes/?per_page=1', undefined, admin())).body.meta.total;
    const before = await count();
    const cases: [unknown, RegExp][] = [
      [{ source: { type: 'tag', source: 'f40' } }, /unknown source type "tag"/],
      [{ source: { type: 'git', source: 'acme/lib#main' }, flags: ['fast'] }, /unknown flag "fast"/],
      [{ source: { type: 'git', source: 'acme/lib#main' }, arches: ['x86_64'] }, /unknown field "arches"/],
      [{ source: { type: 'git', source: 'acme/lib#main', packages: ['x'] } }, /unknown field "source.packages"/],
      [{ source: { type: 'git', source: 'acme/lib#main;rm -rf /' } }, /may contain only/],
      [{ source: { type: 'git', source: 'acme/lib#main' }, seconds_to_live: -5 }, /seconds_to_live/],
      [{ source: { type: 'git', source: 'acme/lib#main' }, seconds_to_live: 1.5 }, /seconds_to_live should be an integer/],
      [{ source: { type: 'git', source: 'acme/lib#main' }, seconds_to_live: '60' }, /seconds_to_live should be an integer/],
      [{ source: { type: 'git', source: '' } }, /at least one/],
      [{ source: { type: 'git', source: 'lib#main' } }, /TENANT\/REPO#REF/],
      [{ source: { type: 'build', source: 'acme/app#main@yesterday' } }, /YYYYMMDDTHHMMSSZ/],
      [{ source: { type: 'compose', source: 'abc' } }, /not a compose id/],
      [{ source: 'acme/lib#main' }, /"source" must be an object/],
    ];
    for (const [body, message] of cases) {
      const r = await odcs('POST', 'composes/', body, admin());
      assert.equal(r.status, 400, JSON.stringify(body));
      assert.deepEqual([r.body.status, r.body.error], [400, 'Bad Request']);
      assert.match(r.body.message, message);
    }
    const bad = await odcs('POST', 'composes/', '{"source": ', admin());
    assert.equal(bad.status, 400);
    assert.match(bad.body.message, /Failed to decode JSON object/);
    assert.equal(await count(), before, 'nothing was created');
    const capped = await submit({ type: 'git', source: 'acme/lib#main' }, admin(), { seconds_to_live: 999999 });
    assert.equal(capped.body.seconds_to_live, 3600, 'capped by CAIRN_COMPOSE_MAX_TTL');
    // Inputs that do not exist: the compose fails with the reason, and nothing is served.
    for (const source of [{ type: 'git', source: 'acme/lib#nope' }, { type: 'git', source: 'acme/ghost#main' },
      { type: 'build', source: 'acme/app#main@20200101T000000Z' }, { type: 'build', source: 'acme/lib#main' }, { type: 'compose', source: '99999' }]) {
      const failed = await settled((await submit(source)).body.id);
      assert.equal(failed.state_name, 'failed', JSON.stringify(source));
      assert.match(failed.state_reason, /^Error while generating compose: (acme\/lib has no branch or tag "nope"|no repository acme\/ghost|acme\/app has no build main@20200101T000000Z|acme\/lib has no successful build of main|no compose 99999)$/);
      assert.equal(failed.toplevel_url, null);
      assert.equal((await fetch(`${server.base}/composes/odcs-${failed.id}/`, { headers: { authorization: `Bearer ${admin()}` } })).status, 404);
    }
    assert.equal((await odcs('GET', 'composes/?order_by=nonsense', undefined, admin())).status, 400);
    // Times not set yet sort last either way, on both engines.
    const waiting = (await submit({ type: 'git', source: 'acme/lib#main' }, admin(), { flags: ['no_reuse'] })).body.id;
    const byDone = (await odcs('GET', 'composes/?order_by=-time_done&per_page=100', undefined, admin())).body.items as any[];
    const firstNull = byDone.findIndex((c) => c.time_done === null);
    assert.ok(firstNull === -1 || byDone.slice(firstNull).every((c) => c.time_done === null), 'nulls last');
    await settled(waiting);
    assert.equal((await odcs('GET', 'composes/424242', undefined, admin())).status, 404);
  });

  it('only allowed clients create composes of a source type; composes of private repos are private', async () => {
    assert.equal((await submit({ type: 'git', source: 'acme/lib#main' }, '')).status, 401);
    const denied = await submit({ type: 'build', source: 'acme/app#main' }, dev);
    assert.equal(denied.status, 403);
    assert.equal(denied.body.message, 'User dev not allowed to operate with compose with source_types=build.');
    const outsider = await submit({ type: 'git', source: 'acme/lib#main' }, nobody);
    assert.deepEqual([outsider.status, outsider.body.error, outsider.body.message], [403, 'Forbidden', 'User nobody is not in role allowed_clients.']);
    const byDev = await submit({ type: 'git', source: 'acme/lib#v1' }, dev);
    assert.equal(byDev.status, 200);
    assert.equal(byDev.body.owner, 'dev');
    const byGroup = await submit({ type: 'build', source: 'acme/app#main' }, qa);
    assert.equal(byGroup.status, 200, 'a member of tenant qa gets the qa group\'s types');
    const mine = await settled(byDev.body.id);
    assert.equal((await odcs('GET', `composes/${mine.id}`, undefined, stranger)).status, 404, 'a private repo\'s compose is invisible');
    assert.equal((await fetch(`${mine.toplevel_url}manifest.json`)).status, 401, 'anonymous');
    assert.equal((await fetch(`${mine.toplevel_url}manifest.json`, { headers: { authorization: `Bearer ${stranger}` } })).status, 404, 'no grant');
    assert.equal((await fetch(`${mine.toplevel_url}manifest.json`, { headers: { authorization: `Bearer ${dev}` } })).status, 200, 'its owner');
    const listed = (await odcs('GET', 'composes/?per_page=100', undefined, stranger)).body;
    assert.equal(listed.items.length, 0);
    const devList = (await odcs('GET', `composes/?owner=dev&order_by=id`, undefined, dev)).body;
    assert.ok(devList.items.some((c: any) => c.id === byDev.body.id));
    assert.ok(devList.items.every((c: any) => c.owner === 'dev'));
    assert.equal(devList.meta.total, devList.items.length);
    // Someone else's waiting compose is not theirs to cancel; not found when they cannot see it at all.
    assert.equal((await odcs('DELETE', `composes/${byGroup.body.id}`, undefined, stranger)).status, 404);
  });

  it('a pipeline can make a compose of each successful build as it publishes', async () => {
    await server.repo('acme', 'auto');
    const def = { triggers: { push: ['refs/heads/main'] }, build: { run: 'echo auto > "$CAIRN_OUTPUT_DIR/auto.txt"' },
      compose: { extra: 'acme/app#main', label: 'nightly', seconds_to_live: 120 } };
    assert.equal((await server.api('PUT', '/api/v1/repos/acme/auto/pipeline', def, admin())).status, 200);
    await server.api('PUT', '/api/v1/repos/acme/auto/members/nobody', { role: 'admin' }, admin());
    const notAllowed = await server.api('PUT', '/api/v1/repos/acme/auto/pipeline', def, nobody);
    assert.equal(notAllowed.status, 403, 'a repo admin not allowed to make build composes cannot have a pipeline make them');
    assert.match(notAllowed.body.error.message, /compose: User nobody is not in role allowed_clients/);
    const bad = await server.api('PUT', '/api/v1/repos/acme/auto/pipeline', { ...def, compose: { extra: 'acme/app' } }, admin());
    assert.equal(bad.status, 422);
    assert.match(bad.body.error.message, /compose\.extra/);
    const work = await workTree(server.url('acme/auto', { user: 'admin', token: admin() }));
    await must(git(work, 'push', '-q', 'origin', 'main'));
    const run = await waitFor('the build', async () => {
      const r = ((await server.api('GET', '/api/v1/repos/acme/auto/runs', undefined, admin())).body as any[])[0];
      return r?.state === 'succeeded' ? r : null;
    }, 30_000);
    const made = await waitFor('the compose', async () => (await odcs('GET', 'composes/?label=nightly', undefined, admin())).body.items[0]);
    assert.equal(made.source, `acme/auto#main@${run.build_date} acme/app#main`);
    assert.equal(made.owner, 'admin');
    const done = await settled(made.id);
    assert.equal(done.state_name, 'done', done.state_reason);
    assert.equal((await file(`${done.toplevel_url}builds/acme/auto/main/${run.build_date}/auto.txt`)).toString(), 'auto\n');
    await new Promise((r) => setTimeout(r, 500));
    assert.equal((await odcs('GET', 'composes/?label=nightly', undefined, admin())).body.meta.total, 1, 'one compose per publish');
  });

  it('a bounded number generate at once; the rest wait and can be cancelled by their owner', async () => {
    await server.repo('acme', 'big');
    const big = await workTree(server.url('acme/big', { user: 'admin', token: admin() }));
    fs.writeFileSync(path.join(big, 'blob'), crypto.randomBytes(40 * 1024 * 1024));
    await must(git(big, 'add', 'blob'));
    await must(git(big, 'commit', '-q', '-m', 'big'));
    await must(git(big, 'push', '-q', 'origin', 'main'));
    const ids: number[] = [];
    for (let i = 0; i < 4; i++) ids.push((await submit({ type: 'git', source: 'acme/big#main' }, qa, { flags: ['no_reuse'] })).body.id);
    const last = ids[ids.length - 1];
    const waiting = (await odcs('GET', `composes/${last}`, undefined, admin())).body;
    assert.equal(waiting.state_name, 'wait');
    assert.equal((await odcs('DELETE', `composes/${last}`, undefined, dev)).status, 403);
    const cancel = await odcs('DELETE', `composes/${last}`, undefined, qa);
    assert.equal(cancel.status, 202);
    assert.equal(cancel.body.message, `Compose (id=${last}) has been canceled`);
    let maxGenerating = 0;
    await waitFor('the others to finish', async () => {
      const states = await Promise.all(ids.slice(0, 3).map(async (id) => (await odcs('GET', `composes/${id}`, undefined, admin())).body.state_name));
      maxGenerating = Math.max(maxGenerating, states.filter((s) => s === 'generating').length);
      return states.every((s) => s === 'done');
    }, 60_000);
    assert.equal(maxGenerating, 1, 'CAIRN_COMPOSE_WORKERS=1: one at a time');
    const cancelled = (await odcs('GET', `composes/${last}`, undefined, admin())).body;
    assert.deepEqual([cancelled.state_name, cancelled.state_reason], ['failed', 'Canceled by qa-bot']);

    // A server killed while generating: after restart the compose is generated again, and nothing half-written is served.
    const big2 = big;
    fs.writeFileSync(path.join(big2, 'blob2'), crypto.randomBytes(40 * 1024 * 1024));
    await must(git(big2, 'add', 'blob2'));
    await must(git(big2, 'commit', '-q', '-m', 'bigger'));
    await must(git(big2, 'push', '-q', 'origin', 'main'));
    const killed = (await submit({ type: 'git', source: 'acme/big#main' }, admin(), { flags: ['no_reuse'] })).body.id;
    await waitFor('generation to start', async () => (await odcs('GET', `composes/${killed}`, undefined, admin())).body.state_name === 'generating', 20_000);
    await server.stop('SIGKILL');
    await server.start();
    const resumed = await settled(killed);
    assert.equal(resumed.state_name, 'done', resumed.state_reason);
    const manifest = JSON.parse((await file(`${resumed.toplevel_url}manifest.json`)).toString());
    const bytes = await file(`${resumed.toplevel_url}${manifest.files[0].path}`);
    assert.equal(crypto.createHash('sha256').update(bytes).digest('hex'), manifest.files[0].sha256);
    const events = ((await server.api('GET', '/api/v1/events?repo=acme/big&limit=1000', undefined, admin())).body as any[])
      .filter((e) => e.event === 'compose.state_changed' && e.compose.id === killed).map((e) => e.compose.state_name);
    assert.deepEqual(events.slice(-2), ['generating', 'done']);
    assert.ok(events.includes('wait'));
  });
});
