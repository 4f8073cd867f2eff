import { Db, inTransaction, Knex } from '../db';
import type { Logger } from '../log';
import * as store from '../store';
import type { StoredEvent } from '../store';
import { git, peelCommit, resolveRef } from '../git';
import { Definition, lastDue, refMatches } from './definition';
import { queueRun } from './queue';
import type { PipelineDeps } from './worker';

const CONSUMER = 'pipelines';
const BATCH = 200;
const ZERO_ID = '0'.repeat(40);

/**
 * Turns events into runs: pushes matching a pipeline's patterns, a repository's first push (repo_created),
 * a successful publish upstream; and cron schedules. The outbox cursor moves in the same transaction that
 * queues the runs, so each event triggers exactly once, across restarts and replicas.
 */
export class PipelineTriggers {
  constructor(private readonly db: Knex, private readonly gitEnv: NodeJS.ProcessEnv, private readonly repoDir: (repo: store.Repo) => string,
    private readonly canRead: (db: Db, userName: string, repo: store.Repo) => Promise<boolean>, private readonly queued: () => void, private readonly log: Logger,
    private readonly submitCompose: PipelineDeps['submitCompose'] = async () => undefined, private readonly composed: () => void = () => undefined) {}

  /** Reads what the outbox holds past the cursor; true when it found anything (call again at once). */
  async consume(): Promise<boolean> {
    let queuedAny = false;
    const more = await inTransaction(this.db, async (trx) => {
      const cursor = await store.lockCursor(trx, CONSUMER, async () => (await trx('events').max<{ m: number | null }>('id as m').first())?.m ?? 0);
      const events = await store.listEvents(trx, null, cursor, BATCH);
      if (events.length === 0) return false;
      for (const e of events) if (await this.onEvent(trx, e)) queuedAny = true;
      await store.advanceCursor(trx, CONSUMER, events[events.length - 1].id);
      return events.length === BATCH;
    });
    if (queuedAny) this.queued();
    return more;
  }

  private async onEvent(trx: Knex.Transaction, e: StoredEvent): Promise<boolean> {
    if (e.type !== 'push' && e.type !== 'build.published' && e.type !== 'repo.created') return false;
    if (e.type === 'build.published') return this.onPublished(trx, e);
    const pipeline = await store.findPipeline(trx, e.repoId);
    if (!pipeline) return false;
    const def = pipeline.definition as Definition;
    if (e.type === 'repo.created') {
      if (!def.triggers.repo_created) return false;
      const head = await this.defaultBranch(trx, e.repoId);
      return head !== null && (await queueRun(trx, e.repoId, def, { ...head, trigger: 'repo_created' }), true);
    }
    // Refs Cairn wrote itself (an adjust tag) are the output of a run, not a reason for another.
    if (e.data.transport === 'internal') return false;
    const updates = (e.data.updates as { ref: string; old: string; new: string }[]).filter((u) => u.new !== ZERO_ID);
    const repo = await store.findRepoById(trx, e.repoId);
    if (!repo) return false;
    const first = def.triggers.repo_created ? await this.isFirstPush(trx, e) : false;
    let queued = false;
    for (const u of updates) {
      const byPush = (def.triggers.push ?? []).some((p) => refMatches(p, u.ref));
      if (!byPush && !first) continue;
      if (!u.ref.startsWith('refs/heads/') && !u.ref.startsWith('refs/tags/')) continue;
      // An annotated tag is built as the commit it names.
      const commit = u.ref.startsWith('refs/tags/') ? await peelCommit(this.gitEnv, this.repoDir(repo), u.new) : u.new;
      if (!commit) continue;
      await queueRun(trx, e.repoId, def, { ref: u.ref, commit, trigger: first ? 'repo_created' : 'push' });
      queued = true;
    }
    return queued;
  }

  /** A level-2 build: each pipeline that names this (repo, release) as upstream builds its own ref against it. */
  private async onPublished(trx: Knex.Transaction, e: StoredEvent): Promise<boolean> {
    if (e.data.result !== 'success') return false;
    const repo = await store.findRepoById(trx, e.repoId);
    if (!repo) return false;
    let queued = false;
    const own = await store.findPipeline(trx, e.repoId);
    const compose = (own?.definition as Definition | undefined)?.compose;
    if (own && compose) {
      const source = [`${repo.tenantName}/${repo.name}#${String(e.data.release)}@${String(e.data.build_date)}`,
        ...(compose.extra ?? '').split(' ').filter(Boolean)].join(' ');
      await this.submitCompose(trx, { owner: own.updatedBy, source, secondsToLive: compose.seconds_to_live ?? null, label: compose.label ?? null, repoIds: [repo.id] });
      this.composed();
    }
    for (const link of await store.downstreamOf(trx, e.repoId, String(e.data.release))) {
      const pipeline = await store.findPipeline(trx, link.repoId);
      if (!pipeline) continue;
      // Whoever saved the pipeline must still be able to read the upstream repository, or its outputs stay out.
      if (!(await this.canRead(trx, pipeline.updatedBy, repo))) {
        this.log.info({ repo_id: link.repoId, upstream: `${repo.tenantName}/${repo.name}` }, 'upstream publish ignored: the pipeline\'s saver can no longer read it');
        continue;
      }
      const target = link.ref ? await this.refCommit(trx, link.repoId, link.ref) : await this.defaultBranch(trx, link.repoId);
      if (!target) { this.log.info({ repo_id: link.repoId, ref: link.ref }, 'upstream build published, but the downstream ref does not exist'); continue; }
      await queueRun(trx, link.repoId, pipeline.definition as Definition, { ...target, trigger: 'upstream',
        upstream: { repo: `${repo.tenantName}/${repo.name}`, repo_id: repo.id, release: String(e.data.release), build_date: String(e.data.build_date) } });
      queued = true;
    }
    return queued;
  }

  /** Cron schedules: each firing is claimed by one replica; after downtime only the latest missed one runs. */
  async fireSchedules(at = new Date()): Promise<void> {
    let queuedAny = false;
    for (const pipeline of await store.allPipelines(this.db)) {
      const def = pipeline.definition as Definition;
      for (const s of def.triggers.schedule ?? []) {
        const due = lastDue(s.cron, at);
        // A schedule owes nothing from before it was saved.
        if (due.getTime() < Date.parse(pipeline.updatedAt)) continue;
        const fired = await inTransaction(this.db, async (trx) => {
          if (!(await store.claimScheduleFire(trx, pipeline.repoId, `${s.cron} ${s.ref}`, due.toISOString()))) return false;
          const target = await this.refCommit(trx, pipeline.repoId, s.ref);
          if (!target) return false;
          await queueRun(trx, pipeline.repoId, def, { ...target, trigger: 'schedule' });
          return true;
        });
        if (fired) queuedAny = true;
      }
    }
    if (queuedAny) this.queued();
  }

  private async isFirstPush(trx: Knex.Transaction, e: StoredEvent): Promise<boolean> {
    const push = await store.findPush(trx, Number(e.data.push_id));
    return push?.seq === 1;
  }

  /** A ref of this repository → its commit now (null when it names none). */
  private async refCommit(trx: Knex.Transaction, repoId: number, ref: string): Promise<{ ref: string; commit: string } | null> {
    const repo = await store.findRepoById(trx, repoId);
    const found = repo ? await resolveRef(this.gitEnv, this.repoDir(repo), ref) : null;
    return found ? { ref: found.ref, commit: found.commit } : null;
  }

  private async defaultBranch(trx: Knex.Transaction, repoId: number): Promise<{ ref: string; commit: string } | null> {
    const repo = await store.findRepoById(trx, repoId);
    if (!repo) return null;
    const head = (await git(['symbolic-ref', 'HEAD'], { cwd: this.repoDir(repo), env: this.gitEnv })).trim();
    return this.refCommit(trx, repoId, head);
  }

}

