import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import { commit, git, must, TestServer, tmpDir, waitFor } from '../test/harness';

// Issue 4's figures: push → run start, a burst of pushes during a build, webhook deliveries per second.
// References: a post-receive hook that starts the same command (what a plain git server does), and a
// bare fetch loop posting to the same receiver (the ceiling for any webhook sender in Node).

const ms = (start: bigint) => Number(process.hrtime.bigint() - start) / 1e6;
const median = (xs: number[]) => { const s = [...xs].sort((a, b) => a - b); return s[Math.floor(s.length / 2)]; };

/** Waits for a file to appear, polling every millisecond: the moment a build's first command ran. */
async function appeared(file: string, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!fs.existsSync(file)) {
    if (Date.now() > deadline) throw new Error(`${file} never appeared`);
    await new Promise((r) => setTimeout(r, 1));
  }
}

/** Waits for a line in a run's log, polling every millisecond: the moment the build's command ran. */
async function inLog(file: string, marker: string, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try { if (fs.readFileSync(file, 'utf8').includes(marker)) return; } catch { /* not yet */ }
    if (Date.now() > deadline) throw new Error(`${marker} never appeared in ${file}`);
    await new Promise((r) => setTimeout(r, 1));
  }
}

export type PipelineFigures = { lines: string[] };

export async function pipelineBench(cairn: TestServer, referenceRoot: string, referencePushUrl: (repo: string) => string, rounds: number): Promise<PipelineFigures> {
  const marks = tmpDir('bench-marks-');
  const auth = { user: 'admin', token: cairn.adminToken };

  // 1. Push → run start. The build's first command touches a file named by the pushed commit.
  await cairn.repo('acme', 'pipe');
  // The build runs sandboxed (the host read-only to it): it says it started in its log, which the bench watches.
  await cairn.api('PUT', '/api/v1/repos/acme/pipe/pipeline', { triggers: { push: ['refs/heads/main'] },
    build: { run: 'echo "build-started-$CAIRN_COMMIT"' } }, cairn.adminToken);
  const refRepo = path.join(referenceRoot, 'acme', 'pipe.git');
  await must(git(referenceRoot, 'init', '-q', '--bare', '-b', 'main', refRepo));
  await must(git(refRepo, 'config', 'http.receivepack', 'true'));
  const hook = path.join(refRepo, 'hooks', 'post-receive');
  fs.writeFileSync(hook, `#!/bin/sh\nwhile read old new ref; do (touch ${JSON.stringify(marks)}/reference-$new &) ; done\n`, { mode: 0o755 });
  const dirs = new Map<string, string>();
  const targets = [['cairn', cairn.url('acme/pipe', auth)], ['reference', referencePushUrl('acme/pipe')]] as const;
  for (const [name, url] of targets) {
    const dir = tmpDir('bench-pipe-');
    await must(git(dir, 'init', '-q', '-b', 'main'));
    await commit(dir, 'x', 'first\n');
    await must(git(dir, 'push', '-q', url, 'HEAD:refs/heads/main'));
    dirs.set(name, dir);
  }
  const pipeRuns = async () => (await cairn.api('GET', '/api/v1/repos/acme/pipe/runs?limit=1000', undefined, cairn.adminToken)).body as any[];
  const firstRun = await waitFor('the first run', async () => (await pipeRuns()).find((r) => r.state === 'succeeded'));
  let nextRun = firstRun.id + 1;
  const toStart = new Map<string, number[]>([['cairn', []], ['reference', []]]);
  const afterPush = new Map<string, number[]>([['cairn', []], ['reference', []]]);
  for (let i = 0; i < rounds; i++) {
    for (const [name, url] of i % 2 === 0 ? targets : [...targets].reverse()) {
      const dir = dirs.get(name)!;
      const id = await commit(dir, 'x', `${i}\n`);
      const start = process.hrtime.bigint();
      await must(git(dir, 'push', '-q', url, 'HEAD:refs/heads/main'));
      const pushed = ms(start);
      if (name === 'cairn') await inLog(path.join(cairn.dataDir, 'runs', `${nextRun++}.log`), `build-started-${id}`);
      else await appeared(path.join(marks, `${name}-${id}`));
      toStart.get(name)!.push(ms(start));
      afterPush.get(name)!.push(ms(start) - pushed);
    }
  }

  // 2. A burst of 100 pushes to one branch while a build runs.
  await cairn.repo('acme', 'burst');
  const gate = path.join(marks, 'gate');
  await cairn.api('PUT', '/api/v1/repos/acme/burst/pipeline', { triggers: { push: ['refs/heads/main'] },
    build: { run: `while [ ! -e ${JSON.stringify(gate)} ]; do sleep 0.05; done` } }, cairn.adminToken);
  const receiver = await startReceiver();
  const webhook = (await cairn.api('POST', '/api/v1/repos/acme/burst/webhooks', { url: receiver.url, secret: 'bench-secret-123', events: ['push'] }, cairn.adminToken)).body;
  const burstDir = tmpDir('bench-burst-');
  await must(git(burstDir, 'init', '-q', '-b', 'main'));
  await commit(burstDir, 'x', 'first\n');
  const burstUrl = cairn.url('acme/burst', auth);
  await must(git(burstDir, 'push', '-q', burstUrl, 'HEAD:refs/heads/main'));
  const runs = async () => (await cairn.api('GET', '/api/v1/repos/acme/burst/runs?limit=1000', undefined, cairn.adminToken)).body as any[];
  await waitFor('the first build', async () => (await runs()).some((r) => r.state === 'running'));
  let last = '';
  const burstStart = process.hrtime.bigint();
  for (let i = 0; i < 100; i++) {
    last = await commit(burstDir, 'x', `burst ${i}\n`);
    await must(git(burstDir, 'push', '-q', burstUrl, 'HEAD:refs/heads/main'));
    receiver.pushedAt.set(last, Date.now());
  }
  const burstMs = ms(burstStart);
  const during = await waitFor('the last push to be folded in', async () => {
    const l = await runs();
    return l.find((r) => r.state === 'queued')?.commit === last ? l : null;
  });
  const running = during.filter((r) => r.state === 'running').length;
  const queued = during.filter((r) => r.state === 'queued').length;
  fs.writeFileSync(gate, '');
  const finalRuns = await waitFor('the builds to end', async () => { const l = await runs(); return l.every((r) => r.state === 'succeeded') ? l : null; }, 60_000);

  // 3. Webhooks: the burst's push events as they happened, then a backlog (every delivery sent again at once).
  await waitFor('every delivery', async () => receiver.times.length >= 101, 60_000);
  const lags = receiver.lags;
  const deliveries = (await cairn.api('GET', `/api/v1/repos/acme/burst/webhooks/${webhook.id}/deliveries?limit=1000`, undefined, cairn.adminToken)).body as any[];
  receiver.times.length = 0;
  const drainStart = Date.now();
  await Promise.all(deliveries.map((d) => cairn.api('POST', `/api/v1/repos/acme/burst/webhooks/${webhook.id}/deliveries/${d.id}/redeliver`, undefined, cairn.adminToken)));
  await waitFor('every redelivery', async () => receiver.times.length >= deliveries.length, 60_000);
  const drainMs = Math.max(1, receiver.times[receiver.times.length - 1] - drainStart);
  const referenceRate = await fetchLoopRate(receiver.url, 500);
  receiver.close();

  const rate = (n: number, msTotal: number) => (n / (msTotal / 1000)).toFixed(0);
  const c = (m: Map<string, number[]>, k: string) => median(m.get(k)!);
  return { lines: [
    `Pipelines (${rounds} interleaved rounds; the reference is a post-receive hook on http-backend + nginx that starts the same command):`, '',
    '| operation | Cairn | reference | ratio |', '| --- | ---: | ---: | ---: |',
    `| push → build command running (from the start of \`git push\`) | ${c(toStart, 'cairn').toFixed(1)} ms | ${c(toStart, 'reference').toFixed(1)} ms | ${(c(toStart, 'cairn') / c(toStart, 'reference')).toFixed(2)}x |`,
    `| … of which after \`git push\` returned | ${c(afterPush, 'cairn').toFixed(1)} ms | ${c(afterPush, 'reference').toFixed(1)} ms | |`, '',
    `Burst: 100 pushes to one branch in ${(burstMs / 1000).toFixed(1)} s during a running build → ${running} running and ${queued} pending run (at the last commit: yes); ` +
      `${finalRuns.length} runs in all for 101 pushes.`,
    `Webhooks: median lag from \`git push\` returning to the push's delivery at a local receiver ${median(lags).toFixed(0)} ms ` +
      `(p95 ${[...lags].sort((a, b) => a - b)[Math.floor(lags.length * 0.95)].toFixed(0)} ms, ${lags.length} pushes); ` +
      `a backlog of ${deliveries.length} deliveries went out at ${rate(deliveries.length, drainMs)}/s; a bare fetch loop to the same receiver: ${referenceRate.toFixed(0)}/s.`,
  ] };
}

/** A local webhook receiver: when each delivery came, and how long after its event was written. */
async function startReceiver() {
  const times: number[] = [];
  const lags: number[] = [];
  const pushedAt = new Map<string, number>();
  const server = http.createServer((req, res) => {
    let body = '';
    req.on('data', (c) => { body += c; });
    req.on('end', () => {
      times.push(Date.now());
      try {
        const sent = pushedAt.get(JSON.parse(body).updates?.[0]?.new);
        if (sent !== undefined) { lags.push(Date.now() - sent); pushedAt.delete(JSON.parse(body).updates[0].new); }
      } catch { /* the reference loop's bodies */ }
      res.end('ok');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { times, lags, pushedAt, url: `http://127.0.0.1:${(server.address() as net.AddressInfo).port}/hook`, close: () => server.close() };
}

/** The same signed POST, sent one after another with fetch: what a sender costs with nothing else to do. */
async function fetchLoopRate(url: string, n: number): Promise<number> {
  const start = process.hrtime.bigint();
  for (let i = 0; i < n; i++) {
    const body = JSON.stringify({ event: 'bench', i });
    const sig = crypto.createHmac('sha256', 'k').update(`${i}.0.${body}`).digest('base64');
    await (await fetch(url, { method: 'POST', body, headers: { 'content-type': 'application/json', 'webhook-signature': `v1,${sig}` } })).text();
  }
  return n / (ms(start) / 1000);
}
