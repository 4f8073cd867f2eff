import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Db, inTransaction, Knex, leaseAbandoned, leaseHolder, now } from '../db';
import type { Logger } from '../log';
import * as store from '../store';
import type { AdjustResult, Repo, Run, Stage } from '../store';
import type { Refusal, RefUpdate } from '../policy';
import { currentRefs, git, runGit } from '../git';
import { appendEvent } from '../events';
import { buildDateOf, publishBuild, releaseDir } from '../artifacts';
import { Definition, timeoutMs } from './definition';
import { runCommand, RunLog } from './command';
import type { Sandbox } from './sandbox';
import { queueRun, runEventData } from './queue';

export type PipelineDeps = {
  db: Knex;
  log: Logger;
  gitEnv: NodeJS.ProcessEnv;
  repoDir: (repo: Repo) => string;
  dataDir: string;
  artifactsDir: string;
  workers: number;
  logMaxBytes: number;
  publicUrl: () => string;
  /** Cairn's own ref writes (adjust tags): the push path's lock, policy and ledger. */
  writeRefs: (repo: Repo, updates: RefUpdate[]) => Promise<Refusal[]>;
  /** May this user read this repository (now)? An upstream build reaches a pipeline only while its saver may. */
  canRead: (db: Db, userName: string, repo: Repo) => Promise<boolean>;
  sandbox: Sandbox;
  /** Queues a compose in the caller's transaction (a pipeline's `compose` after a publish). */
  submitCompose: (trx: Knex.Transaction, c: { owner: string; source: string; secondsToLive: number | null; label: string | null; repoIds: number[] }) => Promise<unknown>;
  /** Hidden from commands in a sandbox. */
  secretDirs: string[];
};

const LEASE_MS = 30_000;
const HEARTBEAT_MS = 5_000;
const POLL_MS = 500;
const ZERO_ID = '0'.repeat(40);

export const runLogPath = (dataDir: string, runId: number): string => path.join(dataDir, 'runs', `${runId}.log`);

type Outcome = { state: 'succeeded' | 'failed' | 'cancelled'; reason: string | null; published?: { buildDate: string; success: boolean } };
class Cancelled extends Error {}

/**
 * A pool of `workers` slots. Each claims the oldest queued run whose release has nothing running, holds a
 * lease on it (renewed while it runs, so another replica can tell a dead executor), and takes it through
 * its stages in a scratch directory. Cancels arrive through the database, so any replica can ask.
 */
export class RunWorker {
  private readonly active = new Map<number, AbortController>();
  private readonly owner = leaseHolder();
  private timer: NodeJS.Timeout | null = null;
  private heartbeat: NodeJS.Timeout | null = null;
  private ticking: Promise<void> | null = null;
  private again = false;
  private stopped = false;
  private readonly executing = new Set<Promise<void>>();

  constructor(private readonly d: PipelineDeps) {}

  start(): void {
    this.heartbeat = setInterval(() => { this.beat().catch((err) => this.d.log.warn({ err }, 'run heartbeat failed')); }, HEARTBEAT_MS);
    const loop = () => {
      if (this.stopped) return;
      this.wake();
      this.timer = setTimeout(loop, POLL_MS);
    };
    loop();
  }

  /** Looks for work now (a trigger just queued a run, or a slot just freed). */
  wake(): void {
    if (this.stopped) return;
    if (this.ticking) { this.again = true; return; }
    this.ticking = this.fill().catch((err) => this.d.log.error({ err }, 'run worker tick failed'))
      .finally(() => { this.ticking = null; if (this.again) { this.again = false; this.wake(); } });
  }

  /** Asks a run this process executes to stop now (the database flag reaches it anyway, within a poll). */
  cancelLocal(runId: number): void {
    this.active.get(runId)?.abort();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    if (this.heartbeat) clearInterval(this.heartbeat);
    await this.ticking;
    // Runs still executing are left to their lease: the next start marks them failed and queues them again.
    for (const ac of this.active.values()) ac.abort(new Error('server stopping'));
    await Promise.race([Promise.all(this.executing), new Promise((r) => setTimeout(r, 5000))]);
  }

  /**
   * Runs whose executor is gone — a process of this host that is no longer alive (or this very pid, a
   * predecessor after a container restart), or any lease that ran out — are marked failed with the reason
   * and queued once more.
   */
  async recoverOrphans(isAlive: (pid: number) => boolean, atStart: boolean): Promise<number> {
    let n = 0;
    for (const run of await store.orphanedRuns(this.d.db, `${os.hostname()}:`)) {
      // Ours and executing is never an orphan; ours and not executing (a claim in flight) only once its lease ran out.
      if (this.active.has(run.id) || !leaseAbandoned(run.leaseOwner, run.leaseUntil, atStart, isAlive)) continue;
      const owner = run.leaseOwner ?? '';
      // What the dead server's command left running must not go on writing into a run that is over.
      if (owner.startsWith(`${os.hostname()}:`) && run.processGroup !== null) killLeftovers(run.processGroup, this.scratchOf(run.id));
      const published = await this.publishedDir(run);
      await inTransaction(this.d.db, async (trx) => {
        const reason = `the server executing this run stopped (${owner || 'unknown'})${run.attempt === 1 ? '; queued again' : ''}`;
        if (!(await store.finishRun(trx, run.id, 'failed', reason, run.stages.map(endStage('failed'))))) return;
        // Killed between publishing and recording it: the build is there, so it gets its row (and retention).
        if (published) await store.insertBuild(trx, { runId: run.id, repoId: run.repoId, release: run.release, buildDate: run.buildDate!, result: published });
        await appendEvent(trx, run.repoId, 'run.state_changed', runEventData((await store.findRun(trx, run.id))!), now());
        const pipeline = await store.findPipeline(trx, run.repoId);
        if (run.attempt === 1 && pipeline) {
          await queueRun(trx, run.repoId, pipeline.definition as Definition, { ref: run.ref, commit: run.commit, trigger: run.trigger,
            upstream: run.upstream, attempt: 2 });
        }
      });
      n++;
    }
    if (n > 0) this.wake();
    return n;
  }

  private async beat(): Promise<void> {
    for (const id of this.active.keys()) {
      // A run no longer ours (its lease ran out while this process stalled, and it was failed and queued again) stops here.
      if (!(await store.renewLease(this.d.db, id, this.owner, LEASE_MS))) {
        this.d.log.warn({ run_id: id }, 'run lost its lease: stopping it here');
        this.active.get(id)?.abort();
      } else if (await store.isCancelRequested(this.d.db, id)) this.active.get(id)?.abort();
    }
  }

  private async fill(): Promise<void> {
    while (!this.stopped && this.active.size < this.d.workers) {
      const run = await inTransaction(this.d.db, async (trx) => {
        const claimed = await store.claimRun(trx, this.owner, LEASE_MS);
        if (claimed) await appendEvent(trx, claimed.repoId, 'run.state_changed', runEventData(claimed), now());
        return claimed;
      });
      if (!run) return;
      const ac = new AbortController();
      this.active.set(run.id, ac);
      const p = this.execute(run, ac).finally(() => { this.active.delete(run.id); this.executing.delete(p); this.wake(); });
      this.executing.add(p);
    }
  }

  private async execute(run: Run, ac: AbortController): Promise<void> {
    const started = Date.now();
    // Cancels asked on another replica reach this one through the database.
    const poll = setInterval(() => {
      store.isCancelRequested(this.d.db, run.id).then((yes) => { if (yes) ac.abort(); }, () => undefined);
    }, POLL_MS);
    const scratch = this.scratchOf(run.id);
    fs.mkdirSync(path.dirname(runLogPath(this.d.dataDir, run.id)), { recursive: true });
    const log = new RunLog(runLogPath(this.d.dataDir, run.id), this.d.logMaxBytes);
    const stages = run.stages.map((s) => ({ ...s }));
    let outcome: Outcome;
    try {
      outcome = await this.perform(run, ac.signal, scratch, log, stages);
    } catch (err) {
      if (err instanceof Cancelled || ac.signal.aborted) outcome = { state: 'cancelled', reason: this.stopped ? 'server stopping' : 'cancelled' };
      else {
        this.d.log.error({ err, run_id: run.id }, 'run failed inside Cairn');
        log.line(`internal error: ${(err as Error).message}`);
        outcome = { state: 'failed', reason: `internal error: ${(err as Error).message}` };
      }
    } finally {
      clearInterval(poll);
    }
    if (this.stopped && outcome.state === 'cancelled') { log.close(); return; }
    log.line(`run ${outcome.state}${outcome.reason ? `: ${outcome.reason}` : ''}`);
    log.close();
    removeScratch(scratch, this.d.log);
    // Should this fail (the database away), the lease runs out and the orphan sweep ends the run.
    await this.finish(run, stages, outcome);
    this.d.log.info({ run_id: run.id, state: outcome.state, reason: outcome.reason, ms: Date.now() - started }, 'run finished');
  }

  private async perform(run: Run, signal: AbortSignal, scratch: string, log: RunLog, stages: Stage[]): Promise<Outcome> {
    const repo = await store.findRepoById(this.d.db, run.repoId);
    const pipeline = await store.findPipeline(this.d.db, run.repoId);
    if (!repo || !pipeline) return { state: 'failed', reason: 'the repository has no pipeline' };
    const def = pipeline.definition as Definition;
    const bare = this.d.repoDir(repo);
    removeScratch(scratch, this.d.log);
    for (const d of ['src', 'out', 'home', 'tmp']) fs.mkdirSync(path.join(scratch, d), { recursive: true });
    const src = path.join(scratch, 'src');
    const gitDir = path.join(scratch, 'git');
    const stage = async (name: string, state: Stage['state']) => {
      const s = stages.find((x) => x.name === name);
      if (!s) return;
      s.state = state;
      if (state === 'running') s.started_at = now(); else s.finished_at = now();
      await store.updateRun(this.d.db, run.id, { stages });
    };
    if (run.ref.startsWith('refs/heads/')) {
      // Triggers fold into one waiting run; whatever order they came in, it builds the branch as it is now.
      const tip = (await currentRefs(this.d.gitEnv, bare, [run.ref])).get(run.ref);
      if (tip && tip !== run.commit) {
        log.line(`${run.ref} moved on since this run was queued: building ${tip} instead of ${run.commit}`);
        run.commit = tip;
        await store.updateRun(this.d.db, run.id, { commit: tip });
      }
    }
    const buildDate = await this.freeBuildDate(repo, run.release);
    await store.updateRun(this.d.db, run.id, { buildDate });
    log.line(`run ${run.id} of ${repo.tenantName}/${repo.name} ${run.ref} at ${run.commit} (${run.trigger}, attempt ${run.attempt})`);

    await checkout(this.d.gitEnv, bare, gitDir, src, run.commit, this.d.sandbox.kind === 'bwrap');
    const context: Record<string, string> = { CAIRN_URL: `${this.d.publicUrl()}/${repo.tenantName}/${repo.name}.git`, CAIRN_REF: run.ref,
      CAIRN_COMMIT: run.commit, CAIRN_TREE: (await git(['rev-parse', `${run.commit}^{tree}`], { cwd: bare, env: this.d.gitEnv })).trim(),
      CAIRN_RELEASE: run.release, CAIRN_BUILD_DATE: buildDate, CAIRN_RUN: String(run.id), CAIRN_TRIGGER: run.trigger };
    const upstreamDir = run.upstream ? path.join(releaseDir(this.d.artifactsDir, ...splitRepo(run.upstream.repo), run.upstream.release),
      run.upstream.build_date, 'outputs') : null;
    if (run.upstream) context.CAIRN_UPSTREAM = `${run.upstream.repo} ${run.upstream.release} ${run.upstream.build_date}`;
    const mounts = { writable: ['src', 'out', 'home', 'tmp'].map((d) => path.join(scratch, d)),
      readOnly: [[gitDir, path.join(src, '.git')], [path.join(bare, 'objects'), path.join(bare, 'objects')],
        ...(upstreamDir ? [[upstreamDir, upstreamDir]] : [])] as [string, string][],
      hidden: [this.d.dataDir, ...this.d.secretDirs], cwd: src };
    const argv = (command: string) => this.d.sandbox.argv(command, mounts);
    const env = (commit: string): NodeJS.ProcessEnv => ({ PATH: process.env.PATH ?? '/usr/bin:/bin', LANG: process.env.LANG ?? 'C.UTF-8',
      HOME: path.join(scratch, 'home'), TMPDIR: path.join(scratch, 'tmp'), CAIRN_REPO: `${repo.tenantName}/${repo.name}`, CAIRN_REF: run.ref,
      CAIRN_COMMIT: commit, CAIRN_RELEASE: run.release, CAIRN_OUTPUT_DIR: path.join(scratch, 'out'),
      ...(upstreamDir ? { CAIRN_UPSTREAM_DIR: upstreamDir } : {}) });

    const started = (pgid: number) => { store.setProcessGroup(this.d.db, run.id, pgid).catch((err) => this.d.log.warn({ err }, 'recording a process group failed')); };
    const ended = () => store.setProcessGroup(this.d.db, run.id, null);
    let buildCommit = run.commit;
    let failure: string | null = null;
    if (def.adjust) {
      await stage('adjust', 'running');
      log.line(`adjust: ${def.adjust.run}`);
      const r = await runCommand(argv(def.adjust.run), { cwd: src, env: env(run.commit), timeoutMs: timeoutMs(def.adjust), log, signal, started });
      await ended();
      if (r.cancelled) { await stage('adjust', 'cancelled'); throw new Cancelled(); }
      if (r.code !== 0) failure = `adjust ${describeExit(r, def.adjust.timeout_s)}`;
      else {
        const adjusted = await commitAdjustment(this.d, repo, bare, gitDir, src, run.commit);
        if ('refused' in adjusted) failure = `adjust tag refused: ${adjusted.refused}`;
        else {
          await store.updateRun(this.d.db, run.id, { adjust: adjusted });
          log.line(adjusted.tag ? `adjusted: ${adjusted.changed_files.length} files changed, tagged ${adjusted.tag} at ${adjusted.commit}` : 'adjust changed nothing');
          buildCommit = adjusted.commit;
          if (adjusted.tag) Object.assign(context, { CAIRN_ADJUSTED_TAG: adjusted.tag, CAIRN_ADJUSTED_COMMIT: adjusted.commit, CAIRN_TREE: adjusted.tree });
        }
      }
      await stage('adjust', failure ? 'failed' : 'succeeded');
    }
    if (!failure) {
      await stage('build', 'running');
      log.line(`build: ${def.build.run}`);
      const r = await runCommand(argv(def.build.run), { cwd: src, env: env(buildCommit), timeoutMs: timeoutMs(def.build), log, signal, started });
      await ended();
      if (r.cancelled) { await stage('build', 'cancelled'); throw new Cancelled(); }
      if (r.code !== 0) failure = `build ${describeExit(r, def.build.timeout_s)}`;
      await stage('build', failure ? 'failed' : 'succeeded');
    }
    // Every finished build is published, failed ones too: their logs are what someone needs next.
    await stage('publish', 'running');
    log.line(`publish: ${run.release}/${buildDate} (${failure ? 'fail' : 'success'})`);
    await publishBuild({ root: this.d.artifactsDir, tenant: repo.tenantName, repo: repo.name, release: run.release, buildDate,
      outputsDir: path.join(scratch, 'out'), logFile: log.file, context, success: !failure,
      skipped: (entry, why) => log.line(`not published: outputs/${entry}: ${why}`) });
    const s = stages.find((x) => x.name === 'publish')!;
    s.state = 'succeeded'; s.finished_at = now();
    return { state: failure ? 'failed' : 'succeeded', reason: failure, published: { buildDate, success: !failure } };
  }

  /** The run's end, its event, and (when it published) the build row and its event: one transaction. */
  private async finish(run: Run, stages: Stage[], outcome: Outcome): Promise<void> {
    const repo = await store.findRepoById(this.d.db, run.repoId);
    await inTransaction(this.d.db, async (trx) => {
      if (!(await store.finishRun(trx, run.id, outcome.state, outcome.reason, stages.map(endStage(outcome.state === 'cancelled' ? 'cancelled' : 'failed'))))) return;
      const ended = (await store.findRun(trx, run.id))!;
      await appendEvent(trx, run.repoId, 'run.state_changed', runEventData(ended), now());
      if (outcome.published && repo) {
        const { buildDate, success } = outcome.published;
        await store.insertBuild(trx, { runId: run.id, repoId: run.repoId, release: run.release, buildDate, result: success ? 'success' : 'fail' });
        await appendEvent(trx, run.repoId, 'build.published', { run_id: run.id, release: run.release, build_date: buildDate,
          result: success ? 'success' : 'fail', ref: run.ref, commit: run.commit,
          url: `${this.d.publicUrl()}/artifacts/${repo.tenantName}/${repo.name}/${run.release}/${buildDate}/` }, now());
      }
    });
  }

  /** A build directory this run published but never recorded: its result, else null. */
  private async publishedDir(run: Run): Promise<'success' | 'fail' | null> {
    if (!run.buildDate) return null;
    const repo = await store.findRepoById(this.d.db, run.repoId);
    if (!repo || (await store.buildDatesOf(this.d.db, run.repoId, run.release)).includes(run.buildDate)) return null;
    try {
      const result = fs.readFileSync(path.join(releaseDir(this.d.artifactsDir, repo.tenantName, repo.name, run.release), run.buildDate, 'result'), 'utf8').trim();
      return result === 'success' ? 'success' : 'fail';
    } catch { return null; }
  }

  private scratchOf(runId: number): string { return path.join(this.d.dataDir, 'work', `run-${runId}`); }

  /** Now, as a build date; a second later when a build of this release already has that one. */
  private async freeBuildDate(repo: Repo, release: string): Promise<string> {
    const taken = new Set(await store.buildDatesOf(this.d.db, repo.id, release));
    const dir = releaseDir(this.d.artifactsDir, repo.tenantName, repo.name, release);
    for (let t = Date.now(); ; t += 1000) {
      const d = buildDateOf(new Date(t));
      if (!taken.has(d) && !fs.existsSync(path.join(dir, d))) return d;
    }
  }
}

/** Stages still open when a run ends take its end state; those that never started end cancelled. */
const endStage = (state: 'failed' | 'cancelled') => (s: Stage): Stage =>
  s.state === 'running' ? { ...s, state, finished_at: now() } : s.state === 'queued' ? { ...s, state: 'cancelled' } : s;

const splitRepo = (full: string): [string, string] => full.split('/') as [string, string];

function describeExit(r: { code: number | null; signal: string | null; timedOut: boolean }, timeoutS?: number): string {
  if (r.timedOut) return `timed out after ${timeoutS ?? 3600} s`;
  return r.signal ? `killed by ${r.signal}` : `exited with code ${r.code}`;
}

/**
 * A checkout of `commit` whose git dir (`gitDir`) lies outside the work tree and borrows the repository's
 * objects: nothing is copied, no refs are listed. In a sandbox the command sees it read-only at src/.git;
 * without one, src/.git points to it.
 */
async function checkout(gitEnv: NodeJS.ProcessEnv, bare: string, gitDir: string, src: string, commit: string, sandboxed: boolean): Promise<void> {
  await git(['init', '--quiet', '--bare', gitDir], { env: gitEnv });
  await git(['--git-dir', gitDir, 'config', 'core.bare', 'false'], { env: gitEnv });
  fs.writeFileSync(path.join(gitDir, 'objects', 'info', 'alternates'), `${path.join(bare, 'objects')}\n`);
  await git([...safeGit(gitDir, src), '-c', 'advice.detachedHead=false', 'checkout', '--quiet', '--detach', commit], { env: gitEnv });
  if (sandboxed) fs.mkdirSync(path.join(src, '.git'));
  else fs.writeFileSync(path.join(src, '.git'), `gitdir: ${gitDir}\n`);
}

/** Cairn's git on a run's checkout: its own git dir, and nothing the work tree or a command could have set runs. */
const safeGit = (gitDir: string, src: string): string[] =>
  ['--git-dir', gitDir, '--work-tree', src, '-c', 'core.hooksPath=/dev/null', '-c', 'core.fsmonitor=false'];

/** Removes a run's scratch dir; a tree the command made read-only is made writable first. Never throws. */
function removeScratch(dir: string, log: Logger): void {
  try { fs.rmSync(dir, { recursive: true, force: true }); return; } catch { /* read-only parts: fix and retry */ }
  try {
    const walk = (d: string) => {
      fs.chmodSync(d, 0o700);
      for (const e of fs.readdirSync(d, { withFileTypes: true })) if (e.isDirectory()) walk(path.join(d, e.name));
    };
    walk(dir);
    fs.rmSync(dir, { recursive: true, force: true });
  } catch (err) {
    log.warn({ err, dir }, 'could not remove a run\'s scratch dir');
  }
}

/**
 * Kills what a dead server's command left running, if that process group is still the one it started: a
 * member (the shell may be gone, its background children not) works inside the run's scratch dir.
 */
function killLeftovers(pgid: number, scratch: string): void {
  for (const d of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${d}/stat`, 'utf8');
      if (Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[2]) !== pgid) continue;
      const cwd = fs.readlinkSync(`/proc/${d}/cwd`).replace(/ \(deleted\)$/, '');
      if (cwd !== scratch && !cwd.startsWith(`${scratch}${path.sep}`)) continue;
      process.kill(-pgid, 'SIGKILL');
      return;
    } catch { /* gone, or not ours to read */ }
  }
}

const ADJUST_IDENTITY = { GIT_AUTHOR_NAME: 'Cairn', GIT_AUTHOR_EMAIL: 'cairn@localhost', GIT_COMMITTER_NAME: 'Cairn', GIT_COMMITTER_EMAIL: 'cairn@localhost' };

/**
 * What the adjust command left in the worktree, as a commit on top of the input: its identity, date (the
 * input's) and message are fixed, so the same input and result make the same commit and the same tag,
 * `cairn-adjust-<input 12>-<tree 12>`, and a re-run finds its tag already there instead of moving it.
 */
async function commitAdjustment(d: PipelineDeps, repo: Repo, bare: string, gitDir: string, src: string, input: string): Promise<AdjustResult | { refused: string }> {
  // New objects go straight into the repository, where the tag will need them.
  const env = { ...d.gitEnv, GIT_OBJECT_DIRECTORY: path.join(bare, 'objects'), GIT_ALTERNATE_OBJECT_DIRECTORIES: path.join(gitDir, 'objects') };
  const g = safeGit(gitDir, src);
  await git([...g, 'add', '--all', '.'], { cwd: src, env });
  const tree = (await git([...g, 'write-tree'], { cwd: src, env })).trim();
  const inputTree = (await git([...g, 'rev-parse', `${input}^{tree}`], { cwd: src, env })).trim();
  if (tree === inputTree) return { tag: null, commit: input, tree, changed_files: [] };
  const changed = (await git([...g, 'diff-tree', '-r', '--no-renames', '--name-only', '-z', inputTree, tree], { cwd: src, env })).split('\0').filter(Boolean);
  const date = (await git([...g, 'show', '-s', '--format=%cI', input], { cwd: src, env })).trim();
  const commit = (await git([...g, 'commit-tree', tree, '-p', input, '-m', `Adjusted by Cairn\n\nInput: ${input}\n`],
    { cwd: src, env: { ...env, ...ADJUST_IDENTITY, GIT_AUTHOR_DATE: date, GIT_COMMITTER_DATE: date } })).trim();
  const tag = `cairn-adjust-${input.slice(0, 12)}-${tree.slice(0, 12)}`;
  const ref = `refs/tags/${tag}`;
  const existing = (await currentRefs(d.gitEnv, bare, [ref])).get(ref);
  if (existing !== commit) {
    if (existing) return { refused: `${ref} already exists at ${existing}` };
    const refusals = await d.writeRefs(repo, [{ ref, oldId: ZERO_ID, newId: commit }]);
    // Another run (another release of the same commit) may have written this very tag a moment ago.
    const now_ = refusals.length > 0 ? (await currentRefs(d.gitEnv, bare, [ref])).get(ref) : commit;
    if (now_ !== commit) return { refused: refusals.map((r) => `${r.code} ${r.ref}: ${r.reason}`).join('; ') };
  }
  await runGit([...g, '-c', 'advice.detachedHead=false', 'checkout', '--quiet', '--detach', commit], { cwd: src, env });
  return { tag, commit, tree, changed_files: changed };
}
