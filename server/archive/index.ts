// The archive (Repour-compatible) API's logic: origins, trees, dedup, adjust, the task queue and callbacks.
import * as store from '../store';
import type { ArchiveDeps, TaskRun } from './context';
import { ArchiveTasks, Operation } from './tasks';
import { callbackId, errorResult, RepourResult } from './render';
import { pull, PullRequest } from './pull';
import { adjust, AdjustRequest } from './adjust';
import { clone, CloneRequest, externalToInternal, internalScm, InternalScmRequest } from './scm';

export type { ArchiveDeps } from './context';
export type { RepourResult } from './render';
export { entryPathProblem, linkTargetProblem, isOriginAllowed, redactUrl } from './paths';
export { callbackId, errorResult } from './render';
export { ArchiveError } from './errors';
export { callbackDelayMs, MAX_CALLBACK_SENDS } from './tasks';
export { sniffArchive } from './unpack';

export const ARCHIVE_ENDPOINTS = ['pull', 'adjust', 'clone', 'internal-scm'] as const;
export type ArchiveEndpoint = typeof ARCHIVE_ENDPOINTS[number];

export type ArchiveCall = { endpoint: ArchiveEndpoint; request: Record<string, unknown>; user: { id: number; name: string };
  taskId: string | null; callback: store.TaskCallback | null };

/** The archive as the HTTP face sees it: run a request (now, or as a callback task), cancel, translate a URL. */
export class Archive {
  readonly tasks: ArchiveTasks;

  constructor(private readonly deps: ArchiveDeps, isAlive: (pid: number) => boolean) {
    const ops: Record<ArchiveEndpoint, Operation> = {
      pull: (run: TaskRun, r) => pull(deps, run, r as unknown as PullRequest),
      adjust: (run: TaskRun, r) => adjust(deps, run, r as unknown as AdjustRequest),
      clone: (run: TaskRun, r) => clone(deps, run, r as unknown as CloneRequest),
      'internal-scm': (run: TaskRun, r) => internalScm(deps, run, r as unknown as InternalScmRequest),
    };
    this.tasks = new ArchiveTasks(deps, ops, isAlive);
  }

  /** Synchronous: the result. With a callback: the task is queued and its id answered at once (202). */
  async call(c: ArchiveCall): Promise<RepourResult> {
    const task = { id: callbackId(), taskId: c.taskId, endpoint: c.endpoint, request: c.request, userId: c.user.id, userName: c.user.name,
      callback: c.callback };
    if (c.callback) {
      await this.tasks.enqueue(task);
      return { status: 202, body: { callback: { id: task.id } } };
    }
    return this.tasks.runNow(task);
  }

  /** True when some unfinished task carried this taskId: it is flagged, and its runner stops it. */
  async cancel(taskId: string): Promise<boolean> {
    return (await store.requestTaskCancel(this.deps.db, taskId)) > 0;
  }

  externalToInternal(url: string): RepourResult {
    try {
      return { status: 200, body: externalToInternal(this.deps, url) };
    } catch (err) {
      return errorResult(err);
    }
  }
}
