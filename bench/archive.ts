import fs from 'node:fs';
import path from 'node:path';
import knex from 'knex';
import { commit, git, must, run, startTestServer, TestServer, tmpDir, workTree } from '../test/harness';
import { freePort } from './reference';

// The archive (Repour) API against the same work done by hand with the git commands Repour runs: clone
// the origin, drop its history, write-tree, look the tree up among the internal repository's tags
// (Repour fetches them and scans `git log --tags --no-walk`), commit, tag, push. Medians; ratios matter.

const TAGS = Number(process.env.BENCH_TAGS ?? 20_000);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 15);

const ms = (start: bigint) => Number(process.hrtime.bigint() - start) / 1e6;
const median = (xs: number[]) => { const s = [...xs].sort((a, b) => a - b); return s[Math.floor(s.length / 2)]; };
async function timed(fn: () => Promise<unknown>): Promise<number> { const start = process.hrtime.bigint(); await fn(); return ms(start); }

async function pullOk(server: TestServer, token: string, body: Record<string, unknown>, endpoint = 'pull'): Promise<{ tag: string; branch: string }> {
  const res = await fetch(`${server.base}/repour/${endpoint}`, { method: 'POST', body: JSON.stringify(body),
    headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` } });
  const answer = await res.json() as { tag: string; branch: string };
  if (res.status !== 200) throw new Error(`pull: ${res.status} ${JSON.stringify(answer)}`);
  return answer;
}

/** `tags` orphan commits with one tag each in the archive repository, and their trees in the dedup table. */
async function seedTags(server: TestServer, repo: string, tags: number): Promise<void> {
  const dir = server.repoDir(repo);
  const parts: string[] = [];
  for (let i = 0; i < tags; i++) {
    const body = `archived tree ${i}\n`;
    parts.push(`commit refs/tags/repour-seed-${i}\ncommitter Repour <> 0 +0000\ndata 7\nRepour\nM 644 inline f\ndata ${body.length}\n${body}\n`);
  }
  const r = await run('git', ['fast-import', '--quiet'], { cwd: dir, input: parts.join('') });
  if (r.code !== 0) throw new Error(r.stderr);
  await must(git(dir, 'pack-refs', '--all', '--prune'));
  const listing = (await must(git(dir, 'for-each-ref', '--format=%(objectname) %(refname:short) %(tree)', 'refs/tags'))).stdout;
  const db = server.extraEnv.DATABASE_URL ? knex({ client: 'pg', connection: server.extraEnv.DATABASE_URL })
    : knex({ client: 'sqlite3', connection: { filename: path.join(server.dataDir, 'cairn.sqlite') }, useNullAsDefault: true });
  try {
    const repoId = (await db('repos').join('tenants', 'tenants.id', 'repos.tenant_id')
      .where({ 'tenants.name': repo.split('/')[0], 'repos.name': repo.split('/')[1] }).first('repos.id')).id;
    const rows = listing.split('\n').filter(Boolean).map((l) => {
      const [commitId, tag, tree] = l.split(' ');
      return { repo_id: repoId, tree, tag, commit: commitId, branch: `branch-pull-${commitId}`, created_at: new Date().toISOString() };
    });
    await db.batchInsert('archive_trees', rows, 100);
  } finally { await db.destroy(); }
}

/** Repour's own steps, by hand: what the archive API replaces. Answers the tag (found or made). */
async function byHand(originUrl: string, ref: string, internalUrl: string): Promise<string> {
  const work = tmpDir('bench-hand-');
  try {
    await must(git(work, 'clone', '-q', '--depth', '1', '--branch', ref, originUrl, 'src'));
    const src = path.join(work, 'src');
    fs.rmSync(path.join(src, '.git'), { recursive: true, force: true });
    await must(git(src, 'init', '-q', '-b', 'tmp'));
    await must(git(src, 'add', '-A', '-f'));
    const tree = (await must(git(src, 'write-tree'))).stdout.trim();
    await must(git(src, 'remote', 'add', 'origin', internalUrl));
    await must(git(src, 'fetch', '-q', '--depth', '1', '--tags', 'origin'));
    const log = (await must(git(src, '--no-pager', 'log', '--tags', '--no-walk', '--pretty=%T::%D'))).stdout;
    const hit = log.split('\n').find((l) => l.startsWith(`${tree}::`));
    if (hit) return /tag: ([^,\s]+)/.exec(hit)?.[1] ?? 'found';
    const env = { GIT_AUTHOR_DATE: '1970-01-01T00:00:00 +0000', GIT_COMMITTER_DATE: '1970-01-01T00:00:00 +0000' };
    await must(run('git', ['-c', 'user.name=Repour', '-c', 'user.email=', 'commit', '-q', '-m', 'Repour'], { cwd: src, env: { ...process.env, ...env } }));
    const id = (await must(git(src, 'rev-parse', 'HEAD'))).stdout.trim();
    await must(run('git', ['-c', 'user.name=Repour', '-c', 'user.email=', 'tag', '-a', '-m', `Origin: ${originUrl}`, `repour-${id}`], { cwd: src, env: { ...process.env, ...env } }));
    await must(git(src, 'push', '-q', '--atomic', 'origin', `HEAD:refs/heads/branch-pull-${id}`, `refs/tags/repour-${id}`));
    return `repour-${id}`;
  } finally { fs.rmSync(work, { recursive: true, force: true }); }
}

/** The figures, as table lines for the bench's report. */
export async function archiveBench(): Promise<string[]> {
  const port = await freePort();
  const server = await startTestServer({ CAIRN_HTTP_PORT: String(port), CAIRN_ARCHIVE_ALLOWED_ORIGINS: `http://127.0.0.1:${port}/upstream/`,
    CAIRN_ARCHIVE_ADJUSTERS: JSON.stringify({ NOOP: 'true' }) });
  try {
    const auth = { user: 'admin', token: server.adminToken };
    const token = (await server.api('POST', '/api/v1/users/admin/tokens', { permissions: ['archive'] }, server.adminToken)).body.token as string;
    await server.repo('upstream', 'src', { public: true });
    const up = await workTree(server.url('upstream/src', auth));
    for (let i = 0; i < 200; i++) fs.writeFileSync(path.join(up, `file${i}.txt`), `content ${i}\n`.repeat(20));
    await commit(up, 'README', 'the project\n');
    await must(git(up, 'push', '-q', 'origin', 'main'));
    const origin = `http://127.0.0.1:${port}/upstream/src.git`;
    const branches: Record<string, string> = {};
    for (const [name, tags] of [['big', TAGS], ['small', 10]] as const) {
      branches[name] = (await pullOk(server, token, { name, type: 'git', url: origin, ref: 'main' })).branch;
      process.stderr.write(`bench: archive: seeding archive/${name} with ${tags} tags\n`);
      await seedTags(server, `archive/${name}`, tags);
    }
    const internal = server.url('archive/big', auth);
    const samples = { seenBig: [] as number[], seenSmall: [] as number[], handSeen: [] as number[], newTree: [] as number[], handNew: [] as number[],
      adjustBig: [] as number[], adjustSmall: [] as number[] };
    const adjust = (name: string) => pullOk(server, token, { ref: branches[name], name, buildType: 'NOOP' }, 'adjust');
    // The dedup answers first, big and small interleaved (alternating which goes first), with nothing heavy in between.
    for (let i = 0; i < ROUNDS * 2; i++) {
      const order = i % 2 === 0 ? ['big', 'small'] as const : ['small', 'big'] as const;
      for (const name of order) {
        (name === 'big' ? samples.seenBig : samples.seenSmall).push(await timed(() => pullOk(server, token, { name, type: 'git', url: origin, ref: 'main' })));
        (name === 'big' ? samples.adjustBig : samples.adjustSmall).push(await timed(() => adjust(name)));
      }
    }
    for (let i = 0; i < ROUNDS; i++) {
      process.stderr.write(`bench: archive round ${i + 1}/${ROUNDS}\n`);
      samples.handSeen.push(await timed(() => byHand(origin, 'main', internal)));
      for (const who of ['api', 'hand']) {
        await must(git(up, 'checkout', '-q', '-B', `${who}-${i}`, 'main'));
        await commit(up, 'ROUND', `${who} ${i}\n`);
        await must(git(up, 'push', '-q', 'origin', `${who}-${i}`));
      }
      samples.newTree.push(await timed(() => pullOk(server, token, { name: 'big', type: 'git', url: origin, ref: `api-${i}` })));
      samples.handNew.push(await timed(() => byHand(origin, `hand-${i}`, internal)));
    }
    const row = (op: string, cairn: number[], hand: number[]) =>
      `| ${op} | ${median(cairn).toFixed(1)} ms | ${median(hand).toFixed(1)} ms | ${(median(cairn) / median(hand)).toFixed(2)}x |`;
    return [
      `Archive (Repour API): origin of 201 files; archive repository of ${TAGS} tags; medians of ${ROUNDS} runs (dedup answers: ${ROUNDS * 2}, interleaved).`, '',
      '| operation | Cairn /repour/pull | by hand (clone, write-tree, tag lookup, tag, push) | ratio |', '| --- | ---: | ---: | ---: |',
      row(`already-seen tree, ${TAGS} tags`, samples.seenBig, samples.handSeen),
      row(`new tree, ${TAGS} tags`, samples.newTree, samples.handNew), '',
      `Dedup answer, already-seen tree: ${median(samples.seenBig).toFixed(1)} ms with ${TAGS} tags, ${median(samples.seenSmall).toFixed(1)} ms with 10 tags ` +
      `(${(median(samples.seenBig) / median(samples.seenSmall)).toFixed(2)}x).`,
      `/repour/adjust whose result tree is already tagged (no-op adjuster): ${median(samples.adjustBig).toFixed(1)} ms with ${TAGS} tags, ` +
      `${median(samples.adjustSmall).toFixed(1)} ms with 10 tags (${(median(samples.adjustBig) / median(samples.adjustSmall)).toFixed(2)}x).`,
    ];
  } finally {
    await server.stop();
  }
}

if (require.main === module) {
  archiveBench().then((lines) => process.stdout.write(lines.join('\n') + '\n'))
    .catch((err) => { process.stderr.write(`bench failed: ${err.stack ?? err}\n`); process.exit(1); });
}
