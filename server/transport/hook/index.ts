import crypto from 'node:crypto';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { Knex, now } from '../../db';
import { Logger } from '../../log';
import * as store from '../../store';
import type { Repo } from '../../store';
import { decideCommands, decidePush, refusalLine, Refusal, RefUpdate } from '../../policy';
import { acquirePushLock, adoptDefaultBranch, currentRefs, gatherFacts, git, isProcessAlive, LockTimeout, packRefs, repoPath } from '../../git';
import { recordPendingPush, settlePush } from '../../events';
import { metrics } from '../../metrics';

/**
 * The loopback listener hooks/pre-receive talks to. A push session binds a random token to (who, repo,
 * transport) for exactly as long as its receive-pack runs; the token is the hook's only credential.
 */
export type PushSession = {
  env: Record<string, string>;
  /** Call with receive-pack's pid once it is spawned, so a restarted server can wait for an orphan. */
  setPid(pid: number | undefined): void;
  /**
   * Call when receive-pack has exited: records what landed (then calls `recorded`, so the transport can
   * end its answer: when `git push` returns, the ledger has the push), tidies up, and lets the next push in.
   */
  finish(recorded?: () => void): Promise<void>;
};
export type PushActor = { userName: string; userId: number | null; transport: 'http' | 'ssh' | 'internal' };

type SessionState = { actor: PushActor; repo: Repo; repoPath: string; pid: number | null; used: boolean;
  pushId: number | null; release: (() => void) | null; verdict: Promise<unknown> | null; decided: boolean };

const LOCK_WAIT_MS = 45_000;
const MAX_HOOK_INPUT = 40 * 1024 * 1024;
const UPDATE_LINE = /^([0-9a-f]{40}) ([0-9a-f]{40}) (refs\/\S+)$/;
const ANCESTRY_LINE = /^ancestry (refs\/heads\/\S+) (yes|no)$/;

export class HookServer {
  private readonly sessions = new Map<string, SessionState>();
  /** Pushes allowed by a live session of this process: never a leftover to settle. */
  private readonly activePushIds = new Set<number>();
  private server: net.Server | null = null;
  port = 0;
  /** Told after each push lands in the ledger (its event is committed): consumers read it now, not at their next poll. */
  onAccepted: () => void = () => undefined;

  constructor(private readonly db: Knex, private readonly gitEnv: NodeJS.ProcessEnv, private readonly reposDir: string,
    private readonly log: Logger) {}

  async listen(): Promise<void> {
    this.server = net.createServer((socket) => this.onConnection(socket));
    await new Promise<void>((resolve) => this.server!.listen(0, '127.0.0.1', resolve));
    this.port = (this.server.address() as net.AddressInfo).port;
  }

  async close(): Promise<void> {
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
  }

  open(actor: PushActor, repo: Repo, repoPath: string): PushSession {
    const token = crypto.randomBytes(32).toString('hex');
    const key = sessionKey(token);
    const state: SessionState = { actor, repo, repoPath, pid: null, used: false, pushId: null, release: null, verdict: null, decided: false };
    this.sessions.set(key, state);
    return {
      env: { CAIRN_HOOK_PORT: String(this.port), CAIRN_PUSH_TOKEN: token },
      setPid: (pid) => { state.pid = pid ?? null; },
      finish: async (recorded) => {
        this.sessions.delete(key);
        // A receive-pack gone before its verdict came told its client nothing: nothing to wait for on its behalf.
        if (!state.decided) recorded?.();
        // receive-pack can exit while its verdict is still being made (the hook gave up waiting): let the
        // verdict finish first, so whatever it took (the lock, a pending record) is settled and given back.
        await state.verdict?.catch(() => undefined);
        try {
          const settled = state.pushId !== null ? await this.settle(state.pushId, state.repoPath) : null;
          recorded?.();
          // After the client has its answer but under the push lock: the next verdict reads refs from the
          // files, and must not see packed-refs change under it.
          if (settled?.packRefs) {
            await packRefs(this.gitEnv, state.repoPath).catch((err) => this.log.warn({ err, repo_path: state.repoPath }, 'pack-refs failed'));
          }
        } finally {
          recorded?.();
          // Released even when settling failed: the next verdict on this repository settles it first.
          if (state.pushId !== null) this.activePushIds.delete(state.pushId);
          state.release?.();
        }
      },
    };
  }

  /** Records what a finished receive-pack left on disk; says whether the repository's refs want packing. */
  async settle(pushId: number, repoPath: string): Promise<{ packRefs: boolean }> {
    const started = process.hrtime.bigint();
    const { outcome, seq, push, diskRefs: disk } = await settlePush(this.db, pushId, (refs) => currentRefs(this.gitEnv, repoPath, refs));
    if (outcome === 'accepted' && push) {
      this.onAccepted();
      metrics.pushesAccepted.inc({ transport: push.transport });
      const created = push.updates.filter((u) => u.ref.startsWith('refs/heads/') && disk.get(u.ref) === u.newId && /^0{40}$/.test(u.oldId));
      await adoptDefaultBranch(this.gitEnv, repoPath, created.map((u) => u.ref));
    }
    this.log.info({ push_id: pushId, outcome, settle_ms: Number(process.hrtime.bigint() - started) / 1e6 }, 'push settled');
    return { packRefs: outcome === 'accepted' && push !== null && shouldPackRefs(push.updates.length, seq ?? 0) };
  }

  /**
   * Pushes left pending — by a killed server, or a settle that failed — are settled from the disk: at start
   * for every repository, and under the push lock before each verdict for that repository, so no later
   * push can land before them. One whose receive-pack is still running on this host is waited for; it
   * counts as unsettled if it outlives `waitMs`.
   */
  async settleLeftovers(where: { host?: string; repoId?: number }, waitMs: number): Promise<{ settled: number; running: number }> {
    let settled = 0; let running = 0;
    for (const push of await store.pendingPushes(this.db, where)) {
      if (this.activePushIds.has(push.id)) continue;
      if (push.host === os.hostname() && push.pid !== null && !(await exited(push.pid, waitMs))) { running++; continue; }
      const repo = await store.findRepoById(this.db, push.repoId);
      if (!repo) continue;
      await this.settle(push.id, repoPath(this.reposDir, repo.tenantName, repo.name));
      settled++;
    }
    return { settled, running };
  }

  /**
   * Ref updates Cairn makes itself (adjust tags, archive tags): the same lock, policy, pending record and
   * ledger as a push, recorded with transport `internal`. The objects must already be in the repository.
   * Resolves to the refusals; empty means every update landed and is in the ledger.
   */
  async writeRefs(actor: PushActor, repo: Repo, updates: RefUpdate[]): Promise<Refusal[]> {
    const dir = repoPath(this.reposDir, repo.tenantName, repo.name);
    const early = decideCommands(repo, updates);
    if (early.length > 0) return early;
    const release = await acquirePushLock(dir, LOCK_WAIT_MS);
    let pushId: number | null = null;
    try {
      await this.settleLeftovers({ repoId: repo.id }, 5_000);
      const fresh = (await store.findRepoById(this.db, repo.id)) ?? repo;
      const facts = await gatherFacts(this.gitEnv, dir, updates, new Map(), {});
      const refusals = decidePush(fresh, updates, facts);
      if (refusals.length > 0) { this.refused({ actor, repo: fresh }, refusals); return refusals; }
      pushId = await recordPendingPush(this.db, { repoId: repo.id, userName: actor.userName, userId: actor.userId,
        transport: actor.transport, at: now(), host: os.hostname(), pid: null, updates });
      this.activePushIds.add(pushId);
      const script = ['start', ...updates.map((u) => `update ${u.ref} ${u.newId} ${u.oldId}`), 'prepare', 'commit', ''].join('\n');
      await git(['update-ref', '--stdin'], { cwd: dir, env: this.gitEnv, input: script });
      await this.settle(pushId, dir);
      return [];
    } finally {
      // A failure between record and settle leaves the push pending: the next verdict settles it from disk.
      if (pushId !== null) this.activePushIds.delete(pushId);
      release();
    }
  }

  private onConnection(socket: net.Socket): void {
    const chunks: Buffer[] = [];
    let size = 0;
    let tail = '';
    let done = false;
    socket.setTimeout(120_000, () => socket.destroy());
    socket.on('error', (err) => this.log.warn({ err }, 'hook connection error'));
    socket.on('data', (chunk: Buffer) => {
      if (done) return;
      chunks.push(chunk);
      size += chunk.length;
      if (size > MAX_HOOK_INPUT) { done = true; reply(socket, [refusalText('CAIRN_BAD_HOOK_INPUT', 'push has too many refs')]); return; }
      tail = (tail + chunk.toString('latin1')).slice(-5);
      if (tail !== '\nend\n') return;
      done = true;
      const text = Buffer.concat(chunks).toString('utf8');
      this.verdict(text.slice(0, -'end\n'.length).split('\n').filter((l, i, a) => i < a.length - 1 || l !== ''))
        .then((lines) => reply(socket, lines))
        .catch((err) => {
          this.log.error({ err }, 'pre-receive failed');
          reply(socket, [refusalText('CAIRN_INTERNAL', 'the server could not decide; push refused')]);
        });
    });
  }

  /** The server side of pre-receive: ['ok'] or one `refuse` line per refused ref. */
  private async verdict(lines: string[]): Promise<string[]> {
    const started = process.hrtime.bigint();
    const elapsedMs = () => Number(process.hrtime.bigint() - started) / 1e6;
    const [hello, objects, alternates, quarantine, ...updateLines] = lines;
    const token = /^pre-receive ([0-9a-f]{64})$/.exec(hello ?? '')?.[1];
    const state = token ? this.sessions.get(sessionKey(token)) : undefined;
    if (!state || state.used) return [refusalText('CAIRN_NO_SESSION', 'unknown or finished push session; push refused')];
    state.used = true;
    const decided = this.decide(state, objects, alternates, quarantine, updateLines, elapsedMs)
      .finally(() => { state.decided = true; });
    state.verdict = decided;
    return decided;
  }

  private async decide(state: SessionState, objects: string, alternates: string, quarantine: string, updateLines: string[],
    elapsedMs: () => number): Promise<string[]> {
    const objectEnv = quarantineEnv(state.repoPath, objects, alternates, quarantine);
    if (!objectEnv) return [refusalText('CAIRN_BAD_HOOK_INPUT', 'object directories outside the repository')];
    const updates: RefUpdate[] = [];
    const ancestry = new Map<string, boolean>();
    for (const line of updateLines) {
      const update = UPDATE_LINE.exec(line);
      const fact = ANCESTRY_LINE.exec(line);
      if (update && ancestry.size === 0) updates.push({ oldId: update[1], newId: update[2], ref: update[3] });
      else if (fact && !ancestry.has(fact[1])) ancestry.set(fact[1], fact[2] === 'yes');
      else if (line !== '') return [refusalText('CAIRN_BAD_HOOK_INPUT', 'malformed ref update from git')];
    }
    if (updates.length === 0) return [refusalText('CAIRN_BAD_HOOK_INPUT', 'push without ref updates')];
    const updatedRefs = new Set(updates.map((u) => u.ref));
    if ([...ancestry.keys()].some((ref) => !updatedRefs.has(ref))) return [refusalText('CAIRN_BAD_HOOK_INPUT', 'ancestry of a ref not in the push')];
    try {
      state.release = await acquirePushLock(state.repoPath, LOCK_WAIT_MS);
      this.log.debug({ lock_ms: elapsedMs() }, 'push lock taken');
      const leftovers = await this.settleLeftovers({ repoId: state.repo.id }, 5_000);
      if (leftovers.running > 0) {
        state.release(); state.release = null;
        return [refusalText('CAIRN_REPO_BUSY', 'an earlier push to this repository is still finishing; try again')];
      }
    } catch (err) {
      if (err instanceof LockTimeout) return [refusalText('CAIRN_REPO_BUSY', 'another push to this repository took too long; try again')];
      throw err;
    }
    try {
      const repo = (await store.findRepoById(this.db, state.repo.id)) ?? state.repo;
      const facts = await gatherFacts(this.gitEnv, state.repoPath, updates, ancestry, objectEnv);
      const refusals = decidePush(repo, updates, facts);
      if (refusals.length > 0) {
        this.refused(state, refusals);
        state.release(); state.release = null;
        return refusals.map((r) => `refuse ${refusalLine(r)}`);
      }
      state.pushId = await recordPendingPush(this.db, { repoId: repo.id, userName: state.actor.userName,
        userId: state.actor.userId, transport: state.actor.transport, at: now(), host: os.hostname(), pid: state.pid, updates });
      this.activePushIds.add(state.pushId);
      this.log.info({ push_id: state.pushId, repo: `${repo.tenantName}/${repo.name}`, user: state.actor.userName,
        transport: state.actor.transport, refs: updates.length, verdict_ms: elapsedMs() }, 'push allowed');
      return ['ok'];
    } catch (err) {
      state.release?.(); state.release = null;
      throw err;
    }
  }

  private refused(state: Pick<SessionState, 'actor' | 'repo'>, refusals: Refusal[]): void {
    for (const r of refusals) metrics.pushesRefused.inc({ code: r.code });
    this.log.info({ repo: `${state.repo.tenantName}/${state.repo.name}`, user: state.actor.userName,
      refusals: refusals.map(refusalLine) }, 'push refused');
  }
}

/**
 * Loose refs make every ref advertisement read one file per ref. Packing after a push that brought many
 * refs, and every so often otherwise, keeps a repository of 100,000 tags as fast to clone as a small one.
 */
const shouldPackRefs = (refsInPush: number, seq: number): boolean => refsInPush >= 32 || seq % 64 === 0;

async function exited(pid: number, waitMs: number): Promise<boolean> {
  const deadline = Date.now() + waitMs;
  while (isProcessAlive(pid)) {
    if (Date.now() > deadline) return false;
    await new Promise((r) => setTimeout(r, 50));
  }
  return true;
}

const sessionKey = (token: string): string => crypto.createHash('sha256').update(token).digest('hex');

const refusalText = (code: string, reason: string): string => `refuse ${code}: ${reason}`;

function reply(socket: net.Socket, lines: string[]): void {
  socket.end(lines.map((l) => `${l}\n`).join('') + (lines[0] === 'ok' ? '' : 'end\n'));
}

/** The quarantine git hands its hook must lie inside the session's own repository. */
function quarantineEnv(repoPath: string, objects?: string, alternates?: string, quarantine?: string): Record<string, string> | null {
  const inside = (p: string) => path.resolve(repoPath, p).startsWith(path.resolve(repoPath) + path.sep);
  const o = /^objects (.*)$/.exec(objects ?? '')?.[1];
  const a = /^alternates (.*)$/.exec(alternates ?? '')?.[1];
  const q = /^quarantine (.*)$/.exec(quarantine ?? '')?.[1];
  if (o === undefined || a === undefined || q === undefined) return null;
  const alternateList = a ? a.split(':') : [];
  if ((o && !inside(o)) || alternateList.some((d) => !inside(d)) || (q && !inside(q))) return null;
  const env: Record<string, string> = {};
  if (o) env.GIT_OBJECT_DIRECTORY = path.resolve(repoPath, o);
  if (a) env.GIT_ALTERNATE_OBJECT_DIRECTORIES = alternateList.map((d) => path.resolve(repoPath, d)).join(':');
  if (q) env.GIT_QUARANTINE_PATH = path.resolve(repoPath, q);
  return env;
}
