import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { git, must, run, startTestServer, TestServer, tmpDir, waitFor, workTree } from '../test/harness';

// Issue 6's figures: a compose of 20 source trees and 5 builds — first, reused (identical pins), and
// generated again with no_reuse (hard links) — in time and in disk actually used (the file system's free
// blocks before and after). The reference makes the same files by hand: `git archive` of each tree and a
// copy of each build's outputs, as a compose service that copies would.

const ms = (start: bigint) => Number(process.hrtime.bigint() - start) / 1e6;
const freeBytes = (dir: string) => { const s = fs.statfsSync(dir); return s.bfree * s.bsize; };
const mb = (bytes: number) => `${(bytes / 1024 / 1024).toFixed(2)} MB`;

async function compose(server: TestServer, source: Record<string, unknown>, flags: string[] = []): Promise<{ ms: number; disk: number; body: any }> {
  const before = freeBytes(server.dataDir);
  const start = process.hrtime.bigint();
  const res = await fetch(`${server.base}/api/1/composes/`, { method: 'POST', headers: { authorization: `Bearer ${server.adminToken}` },
    body: JSON.stringify({ source, flags }) });
  const id = ((await res.json()) as { id: number }).id;
  const body = await waitFor(`compose ${id}`, async () => {
    const c = await (await fetch(`${server.base}/api/1/composes/${id}`, { headers: { authorization: `Bearer ${server.adminToken}` } })).json() as any;
    return ['done', 'failed'].includes(c.state_name) ? c : null;
  }, 120_000);
  if (body.state_name !== 'done') throw new Error(`compose failed: ${body.state_reason}`);
  const took = ms(start);
  fs.writeFileSync(path.join(server.dataDir, '.sync'), ''); // let the file system account for what was written
  return { ms: took, disk: Math.max(0, before - freeBytes(server.dataDir)), body };
}

export async function composeBench(): Promise<string[]> {
  const server = await startTestServer({ CAIRN_COMPOSE_WORKERS: '1' });
  try {
    const auth = { user: 'admin', token: server.adminToken };
    const gitSources: string[] = [];
    const buildSources: string[] = [];
    // 20 source repositories of about 1 MB each (half of it incompressible), and 5 with a pipeline whose build writes 2 MB.
    for (let i = 0; i < 25; i++) {
      const name = i < 20 ? `src${i}` : `bld${i - 20}`;
      await server.repo('bench', name);
      const work = await workTree(server.url(`bench/${name}`, auth));
      fs.writeFileSync(path.join(work, 'random.bin'), crypto.randomBytes(512 * 1024));
      fs.writeFileSync(path.join(work, 'text.txt'), `line of text ${i}\n`.repeat(30_000));
      await must(git(work, 'add', '.'));
      await must(git(work, 'commit', '-q', '-m', 'content'));
      if (i >= 20) {
        await server.api('PUT', `/api/v1/repos/bench/${name}/pipeline`, { triggers: { push: ['refs/heads/main'] },
          build: { run: 'head -c 2097152 /dev/urandom > "$CAIRN_OUTPUT_DIR/artifact.bin" && cp text.txt "$CAIRN_OUTPUT_DIR/"' } }, server.adminToken);
        buildSources.push(`bench/${name}#main`);
      } else gitSources.push(`bench/${name}#main`);
      await must(git(work, 'push', '-q', 'origin', 'main'));
    }
    for (let i = 0; i < 5; i++) {
      await waitFor(`build ${i}`, async () => ((await server.api('GET', `/api/v1/repos/bench/bld${i}/runs`, undefined, server.adminToken)).body as any[])[0]?.state === 'succeeded', 60_000);
    }
    const sources = { git: gitSources.join(' '), build: buildSources.join(' ') };
    // One compose per type, then one of both: what a release engineer asks for.
    const gitPart = await compose(server, { type: 'git', source: sources.git });
    const buildPart = await compose(server, { type: 'build', source: sources.build });
    const first = await compose(server, { type: 'compose', source: `${gitPart.body.id} ${buildPart.body.id}` });
    const reused = await compose(server, { type: 'compose', source: `${gitPart.body.id} ${buildPart.body.id}` });
    const linked = await compose(server, { type: 'compose', source: `${gitPart.body.id} ${buildPart.body.id}` }, ['no_reuse']);

    // The reference: the same files made by copying.
    const refDir = tmpDir('bench-compose-ref-');
    const before = freeBytes(refDir);
    const start = process.hrtime.bigint();
    for (const s of gitSources) {
      const name = s.split('/')[1].split('#')[0];
      await must(run('git', ['archive', '--format=tar.gz', `--prefix=${name}/`, '-o', path.join(refDir, `${name}.tar.gz`), 'main'], { cwd: server.repoDir(`bench/${name}`) }));
    }
    for (let i = 0; i < 5; i++) {
      const release = path.join(server.dataDir, 'artifacts', 'bench', `bld${i}`, 'main');
      fs.cpSync(path.join(release, fs.readlinkSync(path.join(release, 'latest_build')), 'outputs'), path.join(refDir, `bld${i}`), { recursive: true });
    }
    const refMs = ms(start);
    fs.writeFileSync(path.join(refDir, '.sync'), '');
    const refDisk = Math.max(0, before - freeBytes(refDir));
    const files = first.body.pins.length;
    return [
      `Composes (20 source trees of ~1 MB and 5 builds of ~2.4 MB; ${files} pinned inputs; disk = free blocks used; the reference copies the same files):`, '',
      '| compose | time | disk used | reference (git archive + cp) |', '| --- | ---: | ---: | ---: |',
      `| 20 trees (tarballs made) | ${gitPart.ms.toFixed(0)} ms | ${mb(gitPart.disk)} | |`,
      `| 5 builds (hard links into the artifact tree) | ${buildPart.ms.toFixed(0)} ms | ${mb(buildPart.disk)} | |`,
      `| all 25, first (tarballs and outputs hard-linked) | ${first.ms.toFixed(0)} ms | ${mb(first.disk)} | ${refMs.toFixed(0)} ms, ${mb(refDisk)} |`,
      `| all 25 again (reused: URL of the first) | ${reused.ms.toFixed(0)} ms | ${mb(reused.disk)} | |`,
      `| all 25 again with no_reuse (hard links) | ${linked.ms.toFixed(0)} ms | ${mb(linked.disk)} | |`,
    ];
  } finally {
    await server.stop();
  }
}

if (require.main === module) {
  composeBench().then((lines) => process.stdout.write(lines.join('\n') + '\n'))
    .catch((err) => { process.stderr.write(`bench failed: ${err.stack ?? err}\n`); process.exit(1); });
}
