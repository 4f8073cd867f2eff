import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { commit, git, must, startTestServer, TestServer, tmpDir, waitFor, workTree } from '../harness';

/** A raw HTTP request, so paths reach the server exactly as written (fetch would normalise `..`). */
function rawGet(port: number, target: string, headers: Record<string, string> = {}): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1', () => {
      socket.write(`GET ${target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n${Object.entries(headers).map(([k, v]) => `${k}: ${v}\r\n`).join('')}\r\n`);
    });
    let data = '';
    socket.on('data', (b) => { data += b.toString('latin1'); });
    socket.on('end', () => resolve({ status: Number(/^HTTP\/1\.1 (\d{3})/.exec(data)?.[1] ?? 0), text: data }));
    socket.on('error', reject);
  });
}

describe('the artifact tree', () => {
  let server: TestServer;
  let buildDate = '';
  const outside = tmpDir('cairn-outside-');
  const auth = () => ({ authorization: `Bearer ${server.adminToken}` });
  before(async () => {
    server = await startTestServer({ CAIRN_RETENTION_INTERVAL_S: '1' });
    await server.repo('acme', 'art');
    fs.writeFileSync(path.join(outside, 'secret.txt'), 'outside the tree\n');
    const def = { triggers: { push: ['refs/heads/main'] }, build: { run: [
      'cd "$CAIRN_OUTPUT_DIR"',
      'head -c 100000 /dev/urandom > blob.bin',
      'mkdir -p dir/sub && echo nested > dir/sub/n.txt',
      `ln -s ${JSON.stringify(path.join(outside, 'secret.txt'))} abs-link`,
      'ln -s ../../../../../../../../../../etc/passwd rel-link',
      'ln -s dir/sub/n.txt inside-link',
      'echo escaped > ../escaped.txt',
      'mkfifo fifo',
      "echo '<script>alert(1)</script>' > '<b>.html'",
    ].join(' && ') } };
    assert.equal((await server.api('PUT', '/api/v1/repos/acme/art/pipeline', def, server.adminToken)).status, 200);
    const work = await workTree(server.url('acme/art', { user: 'admin', token: server.adminToken }));
    await commit(work, 'f', '1\n');
    await must(git(work, 'push', '-q', 'origin', 'main'));
    const run = await waitFor('the build', async () => {
      const r = ((await server.api('GET', '/api/v1/repos/acme/art/runs', undefined, server.adminToken)).body as any[])[0];
      return r && ['succeeded', 'failed'].includes(r.state) ? r : null;
    }, 30_000);
    assert.equal(run.state, 'succeeded');
    buildDate = run.build_date;
  });
  after(() => server.stop());

  const base = () => `${server.base}/artifacts/acme/art/main/${buildDate}`;

  it('serves outputs with their sha256, and Range requests', async () => {
    const file = path.join(server.dataDir, 'artifacts', 'acme', 'art', 'main', buildDate, 'outputs', 'blob.bin');
    const bytes = fs.readFileSync(file);
    const sha = crypto.createHash('sha256').update(bytes).digest('hex');
    const whole = await fetch(`${base()}/outputs/blob.bin`, { headers: auth() });
    assert.equal(whole.status, 200);
    assert.equal(whole.headers.get('x-checksum-sha256'), sha);
    assert.equal(whole.headers.get('accept-ranges'), 'bytes');
    assert.ok(Buffer.from(await whole.arrayBuffer()).equals(bytes));
    const part = await fetch(`${base()}/outputs/blob.bin`, { headers: { ...auth(), range: 'bytes=100-199' } });
    assert.equal(part.status, 206);
    assert.equal(part.headers.get('content-range'), `bytes 100-199/${bytes.length}`);
    assert.ok(Buffer.from(await part.arrayBuffer()).equals(bytes.subarray(100, 200)));
    const tail = await fetch(`${base()}/outputs/blob.bin`, { headers: { ...auth(), range: 'bytes=-10' } });
    assert.ok(Buffer.from(await tail.arrayBuffer()).equals(bytes.subarray(bytes.length - 10)));
    const beyond = await fetch(`${base()}/outputs/blob.bin`, { headers: { ...auth(), range: `bytes=${bytes.length}-` } });
    assert.equal(beyond.status, 416);
    assert.equal(beyond.headers.get('content-range'), `bytes */${bytes.length}`);
    const sums = await (await fetch(`${base()}/SHA256SUMS`, { headers: auth() })).text();
    assert.ok(sums.includes(`${sha}  outputs/blob.bin\n`));
    assert.match(sums, /  outputs\/dir\/sub\/n\.txt\n/);
    assert.match(sums, /  CONTEXT\n/);
    const head = await fetch(`${base()}/outputs/blob.bin`, { method: 'HEAD', headers: auth() });
    assert.equal(head.status, 200);
    assert.equal(head.headers.get('content-length'), String(bytes.length));
  });

  it('lists directories as HTML for people and JSON for programs, names escaped', async () => {
    const json = await (await fetch(`${base()}/outputs/`, { headers: { ...auth(), accept: 'application/json' } })).json() as any;
    const names = json.entries.map((e: any) => e.name);
    assert.deepEqual(names.sort(), ['<b>.html', 'blob.bin', 'dir', 'inside-link'].sort());
    assert.ok(json.entries.find((e: any) => e.name === 'blob.bin').sha256.match(/^[0-9a-f]{64}$/));
    const html = await (await fetch(`${base()}/outputs/`, { headers: auth() })).text();
    assert.match(html, /<a href="blob\.bin">blob\.bin<\/a>/);
    assert.ok(!html.includes('<script>') && html.includes('&#60;b&#62;.html'));
    const redirect = await fetch(`${base()}/outputs`, { headers: auth(), redirect: 'manual' });
    assert.equal(redirect.status, 301);
    const top = await (await fetch(`${server.base}/artifacts/acme/art/main/`, { headers: { ...auth(), accept: 'application/json' } })).json() as any;
    assert.deepEqual(top.entries.map((e: any) => e.name).sort(), [buildDate, 'latest_build'].sort());
    assert.equal(top.entries.find((e: any) => e.name === 'latest_build').target, buildDate, 'the listing says which build latest_build is');
    assert.equal(await (await fetch(`${base()}/outputs/inside-link`, { headers: auth() })).text(), 'nested\n', 'a link inside the outputs is served');
  });

  it('never serves anything outside the tree: links out, writes next to the outputs, path tricks', async () => {
    for (const p of ['outputs/abs-link', 'outputs/rel-link', 'outputs/fifo', 'escaped.txt', '../../../../../etc/passwd']) {
      const r = await fetch(`${base()}/${p}`, { headers: auth() });
      assert.equal(r.status, 404, p);
    }
    const log = await (await fetch(`${base()}/logs/run.log`, { headers: auth() })).text();
    assert.match(log, /not published: outputs\/abs-link: symlink to .* points outside the outputs/);
    assert.match(log, /not published: outputs\/fifo/);
    for (const target of [`/artifacts/acme/art/main/${buildDate}/../../../../../etc/passwd`, '/artifacts/acme/art/%2e%2e/%2e%2e/%2e%2e/keys/secrets.key',
      '/artifacts/acme/art/main%2f..%2f..%2f/x', '/artifacts/acme/art/main/%00', '/artifacts/acme/art/main/%E0%A4%A', '/artifacts/acme/../../cairn.sqlite',
      '/artifacts/acme/art/main/..%5c..%5cx']) {
      const r = await rawGet(server.port, target, auth());
      assert.ok([400, 404].includes(r.status), `${target} → ${r.status}`);
      assert.ok(!r.text.includes('root:') && !r.text.includes('outside the tree'), target);
    }
    assert.equal((await fetch(`${server.base}/artifacts/acme/art/main/${buildDate}/outputs/blob.bin`, { method: 'POST', headers: auth() })).status, 405);
  });

  it('artifacts of a private repo need the credentials a clone needs', async () => {
    const url = `${base()}/result`;
    assert.equal((await fetch(url)).status, 401, 'anonymous');
    const stranger = await server.user('stranger');
    assert.equal((await fetch(url, { headers: { authorization: `Bearer ${stranger}` } })).status, 404, 'a user without a grant sees nothing');
    const reader = await server.user('reader');
    await server.api('PUT', '/api/v1/repos/acme/art/members/reader', { role: 'read' }, server.adminToken);
    const basic = `Basic ${Buffer.from(`reader:${reader}`).toString('base64')}`;
    assert.equal(await (await fetch(url, { headers: { authorization: basic } })).text(), 'success\n');
    await server.api('PATCH', '/api/v1/repos/acme/art', { public: true }, server.adminToken);
    assert.equal((await fetch(url)).status, 200, 'a public repo\'s artifacts are public');
    await server.api('PATCH', '/api/v1/repos/acme/art', { public: false }, server.adminToken);
  });

  it('retention removes old builds of matching releases but never the one latest_build names', async () => {
    await server.repo('acme', 'short');
    const def = { triggers: { push: ['refs/heads/*', 'refs/tags/*'] }, build: { run: 'test "$CAIRN_REF" != refs/heads/broken' },
      publish: { retention: { 'refs/heads/*': '3s', 'refs/tags/*': 'forever' } } };
    assert.equal((await server.api('PUT', '/api/v1/repos/acme/short/pipeline', def, server.adminToken)).status, 200);
    const work = await workTree(server.url('acme/short', { user: 'admin', token: server.adminToken }));
    const runs = async () => (await server.api('GET', '/api/v1/repos/acme/short/runs', undefined, server.adminToken)).body as any[];
    const pushAndWait = async (refspec: string, n: number) => {
      await must(git(work, 'push', '-q', 'origin', refspec));
      return waitFor(`run ${n}`, async () => { const l = await runs(); return l.length >= n && ['succeeded', 'failed'].includes(l[n - 1].state) ? l[n - 1] : null; }, 30_000);
    };
    const b1 = await pushAndWait('main', 1);
    await must(git(work, 'tag', 'v1'));
    const t1 = await pushAndWait('v1', 2);
    await commit(work, 'g', '2\n');
    const b2 = await pushAndWait('main', 3);
    const broken = await pushAndWait('main:broken', 4);
    assert.equal(broken.state, 'failed');
    assert.notEqual(b1.build_date, b2.build_date);
    const dir = (release: string, date: string) => path.join(server.dataDir, 'artifacts', 'acme', 'short', ...release.split('/'), date);
    await waitFor('old builds to go', async () => !fs.existsSync(dir('main', b1.build_date)) && !fs.existsSync(dir('broken', broken.build_date)), 20_000);
    assert.ok(fs.existsSync(dir('main', b2.build_date)), 'latest_build of main is kept whatever its age');
    assert.ok(fs.existsSync(dir('tags/v1', t1.build_date)), 'tags are kept forever');
    assert.equal((await fetch(`${server.base}/artifacts/acme/short/main/${b1.build_date}/result`, { headers: auth() })).status, 404);
    assert.equal(await (await fetch(`${server.base}/artifacts/acme/short/main/latest_build/result`, { headers: auth() })).text(), 'success\n');
    assert.equal(await (await fetch(`${server.base}/artifacts/acme/short/tags/v1/latest_build/result`, { headers: auth() })).text(), 'success\n');
  });
});
