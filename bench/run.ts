import fs from 'node:fs';
import path from 'node:path';
import { commit, git, must, run, startTestServer, TestServer, tmpDir } from '../test/harness';
import { ensureInstalled, startReference } from './reference';

// npm run bench: Cairn side by side with git http-backend (nginx + fcgiwrap) in one run, on the same
// fixtures and the same git client. Ratios matter; absolute figures move with the machine.

const TAGS = Number(process.env.BENCH_TAGS ?? 20_000);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 15);
const CONCURRENT = 32;

const ms = (start: bigint) => Number(process.hrtime.bigint() - start) / 1e6;
const median = (xs: number[]) => { const s = [...xs].sort((a, b) => a - b); return s[Math.floor(s.length / 2)]; };

async function timed(fn: () => Promise<unknown>): Promise<number> {
  const start = process.hrtime.bigint();
  await fn();
  return ms(start);
}

/** 20,000 orphan commits, each with its own tag, as a build archive looks; made with fast-import in seconds. */
async function buildFixture(dir: string, tags: number): Promise<void> {
  await must(git(path.dirname(dir), 'init', '-q', '--bare', '-b', 'main', dir));
  const parts: string[] = [];
  for (let i = 0; i < tags; i++) {
    const msg = `build ${i}\n`; const body = `artifact ${i}\n`;
    parts.push(`commit refs/tags/t${i}\ncommitter Bench <bench@example.com> ${1_700_000_000 + i} +0000\ndata ${msg.length}\n${msg}` +
      `M 644 inline build.txt\ndata ${body.length}\n${body}\n`);
  }
  parts.push(`commit refs/heads/main\ncommitter Bench <bench@example.com> 1800000000 +0000\ndata 5\nmain\nM 644 inline README\ndata 6\nhello\n\n`);
  const r = await run('git', ['fast-import', '--quiet'], { cwd: dir, input: parts.join('') });
  if (r.code !== 0) throw new Error(r.stderr);
}

type Target = { name: string; url: (repo: string) => string; pushUrl: (repo: string) => string };

async function shallowClone(t: Target, version: string, tag: string): Promise<void> {
  const dir = tmpDir('bench-clone-');
  await must(git(dir, '-c', `protocol.version=${version}`, 'clone', '-q', '--depth', '1', '--branch', tag, t.url('acme/tags'), 'c'));
  fs.rmSync(dir, { recursive: true, force: true });
}

function rssSampler(pid: number): { stop(): number } {
  let max = 0;
  const sample = () => {
    try {
      const kb = Number(/VmRSS:\s+(\d+)/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0);
      max = Math.max(max, kb);
    } catch { /* the process may be gone at the very end */ }
  };
  sample();
  const timer = setInterval(sample, 20);
  return { stop() { clearInterval(timer); sample(); return max / 1024; } };
}

async function main(): Promise<void> {
  ensureInstalled();
  const work = tmpDir('cairn-bench-');
  const fixture = path.join(work, 'fixture.git');
  process.stderr.write(`bench: building a fixture of ${TAGS} tagged orphan commits\n`);
  const buildMs = await timed(() => buildFixture(fixture, TAGS));

  const cairn: TestServer = await startTestServer();
  await cairn.repo('acme', 'tags', { public: true });
  await cairn.repo('acme', 'small', { public: true });
  const auth = { user: 'admin', token: cairn.adminToken };
  // Both servers get the fixture the same way, fetched straight into the bare repository as an admin
  // restoring a backup would (and refs packed, as git gc leaves them). Pushing 20,000 refspecs is no
  // server's test: git's client matches them in quadratic time, minutes before it sends a byte.
  const seed = async (dir: string) => {
    await must(git(dir, 'fetch', '-q', fixture, 'refs/tags/*:refs/tags/*', 'refs/heads/main:refs/heads/main'));
    await must(git(dir, 'pack-refs', '--all', '--prune'));
  };
  await seed(cairn.repoDir('acme/tags'));
  const refRoot = path.join(work, 'ref-root');
  fs.mkdirSync(path.join(refRoot, 'acme'), { recursive: true });
  await must(git(work, 'init', '-q', '--bare', '-b', 'main', path.join(refRoot, 'acme', 'tags.git')));
  await seed(path.join(refRoot, 'acme', 'tags.git'));
  await must(git(work, 'init', '-q', '--bare', '-b', 'main', path.join(refRoot, 'acme', 'small.git')));
  for (const r of ['tags', 'small']) await must(git(path.join(refRoot, 'acme', `${r}.git`), 'config', 'http.receivepack', 'true'));
  const reference = await startReference(refRoot, work, 8);

  const targets: Target[] = [
    { name: 'cairn', url: (r) => cairn.url(r), pushUrl: (r) => cairn.url(r, auth) },
    { name: 'reference', url: (r) => reference.url(r), pushUrl: (r) => reference.pushUrl(r) },
  ];

  // Work trees for the push figures, one per target and repo, so each push is exactly one new commit.
  const pushDirs = new Map<string, string>();
  for (const t of targets) {
    for (const repo of ['acme/small', 'acme/tags']) {
      const dir = tmpDir('bench-push-');
      await must(git(dir, 'init', '-q', '-b', 'main'));
      if (repo === 'acme/tags') {
        await must(git(dir, 'fetch', '-q', t.url('acme/tags'), 'main'));
        await must(git(dir, 'reset', '-q', '--hard', 'FETCH_HEAD'));
      } else {
        await commit(dir, 'x.txt', 'first\n');
        await must(git(dir, 'push', '-q', t.pushUrl(repo), 'HEAD:refs/heads/main'));
      }
      pushDirs.set(`${t.name} ${repo}`, dir);
    }
  }

  const results = new Map<string, Map<string, number>>();
  const record = (op: string, target: string, value: number) => {
    const m = results.get(op) ?? new Map<string, number>(); m.set(target, value); results.set(op, m);
  };
  const ops: [string, (t: Target, i: number) => Promise<unknown>][] = [
    ['shallow clone of one tag, protocol v2', (t, i) => shallowClone(t, '2', `t${(i * 7919) % TAGS}`)],
    ['shallow clone of one tag, protocol v0', (t, i) => shallowClone(t, '0', `t${(i * 7919) % TAGS}`)],
    ['git ls-remote (all refs, v2)', (t) => must(git(work, 'ls-remote', t.url('acme/tags')))],
    ['push of one commit (small repo)', async (t, i) => {
      const dir = pushDirs.get(`${t.name} acme/small`)!;
      await must(git(dir, 'commit', '-q', '--allow-empty', '-m', `push ${i}`));
      return timedOnly(() => must(git(dir, 'push', '-q', t.pushUrl('acme/small'), 'HEAD:refs/heads/main')));
    }],
    ['push of one commit (20,000-tag repo)', async (t, i) => {
      const dir = pushDirs.get(`${t.name} acme/tags`)!;
      await must(git(dir, 'commit', '-q', '--allow-empty', '-m', `push ${i}`));
      return timedOnly(() => must(git(dir, 'push', '-q', t.pushUrl('acme/tags'), 'HEAD:refs/heads/main')));
    }],
    ['push of 100 new tags', async (t, i) => {
      const dir = pushDirs.get(`${t.name} acme/small`)!;
      const specs: string[] = [];
      for (let k = 0; k < 100; k++) { await must(git(dir, 'tag', `r${i}-${k}`)); specs.push(`refs/tags/r${i}-${k}`); }
      return timedOnly(() => must(git(dir, 'push', '-q', t.pushUrl('acme/small'), ...specs)));
    }],
  ];
  for (const [op, fn] of ops) {
    process.stderr.write(`bench: ${op}\n`);
    const samples = new Map<string, number[]>(targets.map((t) => [t.name, []]));
    for (let i = 0; i < ROUNDS; i++) {
      // Interleaved, so drift in the machine's load hits both alike.
      for (const t of i % 2 === 0 ? targets : [...targets].reverse()) {
        const start = process.hrtime.bigint();
        const inner = await fn(t, i);
        samples.get(t.name)!.push(typeof inner === 'number' ? inner : ms(start));
      }
    }
    for (const t of targets) record(op, t.name, median(samples.get(t.name)!));
  }

  process.stderr.write(`bench: ${CONCURRENT} concurrent shallow clones\n`);
  let cairnRss = 0;
  const concurrent = new Map<string, number[]>(targets.map((t) => [t.name, []]));
  for (let round = 0; round < 3; round++) {
    for (const t of targets) {
      const sampler = t.name === 'cairn' ? rssSampler(cairn.child!.pid!) : null;
      const wall = await timed(() => Promise.all(Array.from({ length: CONCURRENT }, (_, i) => shallowClone(t, '2', `t${(round * 101 + i * 613) % TAGS}`))));
      if (sampler) cairnRss = Math.max(cairnRss, sampler.stop());
      concurrent.get(t.name)!.push(wall);
    }
  }
  for (const t of targets) record(`${CONCURRENT} concurrent shallow clones (wall)`, t.name, median(concurrent.get(t.name)!));

  reference.stop();
  await cairn.stop();

  const lines = [
    `Fixture: ${TAGS} orphan commits, one tag each (fast-import: ${Math.round(buildMs)} ms). Medians of ${ROUNDS} runs, interleaved;`,
    `concurrent clones: median of 3 rounds. git ${(await run('git', ['--version'])).stdout.trim().replace('git version ', '')}, node ${process.version}, ${require('node:os').cpus().length} cores.`,
    '',
    '| operation | Cairn | http-backend + nginx | ratio |',
    '| --- | ---: | ---: | ---: |',
    ...[...results].map(([op, m]) => `| ${op} | ${m.get('cairn')!.toFixed(1)} ms | ${m.get('reference')!.toFixed(1)} ms | ${(m.get('cairn')! / m.get('reference')!).toFixed(2)}x |`),
    '',
    `Cairn server RSS (node process) during the concurrent clones: max ${cairnRss.toFixed(0)} MB.`,
  ];
  process.stdout.write(lines.join('\n') + '\n');
  fs.rmSync(work, { recursive: true, force: true });
}

async function timedOnly(fn: () => Promise<unknown>): Promise<number> { return timed(fn); }

main().catch((err) => { process.stderr.write(`bench failed: ${err.stack ?? err}\n`); process.exit(1); });
