import fs from 'node:fs';
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { commit, git, gitEnvRun, must, run, sshCommand, sshKeyPair, startTestServer, TestServer, tmpDir } from '../test/harness';
import { ensureSshd, startSshd } from './sshd';
import { ensureInstalled, startReference } from './reference';
import { pipelineBench } from './pipelines';
import { archiveBench } from './archive';
import { composeBench } from './composes';

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

type Target = { name: string; url: (repo: string) => string; pushUrl: (repo: string) => string; env?: NodeJS.ProcessEnv };

async function shallowClone(t: Target, version: string, tag: string): Promise<void> {
  const dir = tmpDir('bench-clone-');
  await must(gitEnvRun(dir, t.env ?? {}, '-c', `protocol.version=${version}`, 'clone', '-q', '--depth', '1', '--branch', tag, t.url('acme/tags'), 'c'));
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

  const httpTargets: Target[] = [
    { name: 'cairn', url: (r) => cairn.url(r), pushUrl: (r) => cairn.url(r, auth) },
    { name: 'reference', url: (r) => reference.url(r), pushUrl: (r) => reference.pushUrl(r) },
  ];
  const pushDirs = await makePushDirs(httpTargets);
  const pushOne = (repo: string) => async (t: Target, i: number) => {
    const dir = pushDirs.get(`${t.name} ${repo}`)!;
    await must(git(dir, 'commit', '-q', '--allow-empty', '-m', `push ${i}`));
    return timed(() => must(gitEnvRun(dir, t.env ?? {}, 'push', '-q', t.pushUrl(repo), 'HEAD:refs/heads/main')));
  };
  const http = await runOps(httpTargets, [
    ['shallow clone of one tag, protocol v2', (t, i) => shallowClone(t, '2', `t${(i * 7919) % TAGS}`)],
    ['shallow clone of one tag, protocol v0', (t, i) => shallowClone(t, '0', `t${(i * 7919) % TAGS}`)],
    ['git ls-remote (all refs, v2)', (t) => must(git(work, 'ls-remote', t.url('acme/tags')))],
    ['push of one commit (small repo)', pushOne('acme/small')],
    ['push of one commit (20,000-tag repo)', pushOne('acme/tags')],
    ['push of 100 new tags', async (t, i) => {
      const dir = pushDirs.get(`${t.name} acme/small`)!;
      const specs: string[] = [];
      for (let k = 0; k < 100; k++) { await must(git(dir, 'tag', `r${i}-${k}`)); specs.push(`refs/tags/r${i}-${k}`); }
      return timed(() => must(git(dir, 'push', '-q', t.pushUrl('acme/small'), ...specs)));
    }],
  ]);
  const rss = rssSampler(cairn.child!.pid!);
  await runConcurrent(httpTargets, CONCURRENT, http);
  const cairnRss = rss.stop();
  process.stderr.write('bench: pipelines\n');
  const pipelines = await pipelineBench(cairn, refRoot, (r) => reference.pushUrl(r), ROUNDS);
  reference.stop();

  // SSH: Cairn's embedded server against OpenSSH sshd + git-shell, on the same repositories.
  ensureSshd();
  const key = await sshKeyPair('ed25519');
  await cairn.api('POST', '/api/v1/users/admin/keys', { title: 'bench', key: key.publicKey }, cairn.adminToken);
  const sshd = await startSshd(refRoot, work, key);
  const cairnSshEnv = { GIT_SSH_COMMAND: sshCommand(cairn, key.path).join(' ') };
  const sshTargets: Target[] = [
    { name: 'cairn', url: (r) => cairn.sshUrl(r), pushUrl: (r) => cairn.sshUrl(r), env: cairnSshEnv },
    { name: 'reference', url: (r) => sshd.url(r), pushUrl: (r) => sshd.url(r), env: { GIT_SSH_COMMAND: sshd.sshCommand } },
  ];
  for (const t of sshTargets) {
    for (const repo of ['acme/small', 'acme/tags']) {
      const dir = pushDirs.get(`${t.name} ${repo}`)!;
      await must(gitEnvRun(dir, t.env!, 'fetch', '-q', t.url(repo), 'main'));
      await must(git(dir, 'reset', '-q', '--hard', 'FETCH_HEAD'));
    }
  }
  const ssh = await runOps(sshTargets, [
    ['shallow clone of one tag, protocol v2', (t, i) => shallowClone(t, '2', `t${(i * 7919) % TAGS}`)],
    ['push of one commit (small repo)', pushOne('acme/small')],
  ]);
  await runConcurrent(sshTargets, 16, ssh);
  const cpuPerConnection = await serverCpuPerConnection(cairn.child!.pid!, () => run('ssh', [...sshCommand(cairn, key.path).slice(1), 'git@127.0.0.1', 'info']));
  sshd.stop();
  await cairn.stop();
  const archive = await archiveBench();
  const composes = await composeBench();

  const gitVersion = (await run('git', ['--version'])).stdout.trim().replace('git version ', '');
  const lines = [
    `Fixture: ${TAGS} orphan commits, one tag each (fast-import: ${Math.round(buildMs)} ms). Medians of ${ROUNDS} runs, interleaved;`,
    `concurrent clones: median of 3 rounds. git ${gitVersion}, node ${process.version}, ${require('node:os').cpus().length} cores.`,
    '', 'HTTP:', '', ...table(http, 'http-backend + nginx'), '',
    `Cairn server RSS (node process) during the ${CONCURRENT} concurrent clones: max ${cairnRss.toFixed(0)} MB.`,
    '', 'SSH:', '', ...table(ssh, 'sshd + git-shell'), '',
    `Cairn server CPU per new SSH connection (key exchange, public-key auth, one \`info\`): ${cpuPerConnection.toFixed(1)} ms.`,
    '', ...pipelines.lines,
    '', ...archive,
    '', ...composes,
  ];
  process.stdout.write(lines.join('\n') + '\n');
  fs.rmSync(work, { recursive: true, force: true });
}

type Results = Map<string, Map<string, number>>;
type Op = [string, (t: Target, i: number) => Promise<unknown>];

/** Each op ROUNDS times per target, interleaved so drift in the machine's load hits both alike; medians. */
async function runOps(targets: Target[], ops: Op[]): Promise<Results> {
  const results: Results = new Map();
  for (const [op, fn] of ops) {
    process.stderr.write(`bench: ${op}\n`);
    const samples = new Map<string, number[]>(targets.map((t) => [t.name, []]));
    for (let i = 0; i < ROUNDS; i++) {
      for (const t of i % 2 === 0 ? targets : [...targets].reverse()) {
        const start = process.hrtime.bigint();
        const inner = await fn(t, i);
        samples.get(t.name)!.push(typeof inner === 'number' ? inner : ms(start));
      }
    }
    results.set(op, new Map(targets.map((t) => [t.name, median(samples.get(t.name)!)])));
  }
  return results;
}

async function runConcurrent(targets: Target[], n: number, into: Results): Promise<void> {
  process.stderr.write(`bench: ${n} concurrent shallow clones\n`);
  const walls = new Map<string, number[]>(targets.map((t) => [t.name, []]));
  for (let round = 0; round < 3; round++) {
    for (const t of targets) {
      walls.get(t.name)!.push(await timed(() => Promise.all(Array.from({ length: n }, (_, i) => shallowClone(t, '2', `t${(round * 101 + i * 613) % TAGS}`)))));
    }
  }
  into.set(`${n} concurrent shallow clones (wall)`, new Map(targets.map((t) => [t.name, median(walls.get(t.name)!)])));
}

function table(results: Results, reference: string): string[] {
  return [`| operation | Cairn | ${reference} | ratio |`, '| --- | ---: | ---: | ---: |',
    ...[...results].map(([op, m]) => `| ${op} | ${m.get('cairn')!.toFixed(1)} ms | ${m.get('reference')!.toFixed(1)} ms | ${(m.get('cairn')! / m.get('reference')!).toFixed(2)}x |`)];
}

/** CPU time (user + system) the server process spends per connection, over 20 connections in a row. */
async function serverCpuPerConnection(pid: number, connect: () => Promise<unknown>): Promise<number> {
  const ticks = () => { const f = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' '); return Number(f[11]) + Number(f[12]); };
  const hz = Number(spawnSync('getconf', ['CLK_TCK']).stdout.toString().trim() || 100);
  const before = ticks();
  for (let i = 0; i < 20; i++) await connect();
  return ((ticks() - before) / hz) * 1000 / 20;
}

/** Work trees for the push figures, one per target and repo, so each push is exactly one new commit. */
async function makePushDirs(targets: Target[]): Promise<Map<string, string>> {
  const dirs = new Map<string, string>();
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
      dirs.set(`${t.name} ${repo}`, dir);
    }
  }
  return dirs;
}

main().catch((err) => { process.stderr.write(`bench failed: ${err.stack ?? err}\n`); process.exit(1); });
