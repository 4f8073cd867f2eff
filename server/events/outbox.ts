import type { Db } from '../db';
import * as store from '../store';
import type { StoredEvent } from '../store';

export type EventType = 'push' | 'repo.created' | 'run.state_changed' | 'build.published' | 'compose.state_changed';

/** Records an event in the outbox, in the caller's transaction: it exists exactly when the change does. */
export const appendEvent = (trx: Db, repoId: number, type: EventType, data: Record<string, unknown>, at: string): Promise<StoredEvent> =>
  store.insertEvent(trx, repoId, type, data, at);

/** The contract's JSON for an event: `event`, `id`, `seq`, `repo`, `at`, then the event's own fields. */
export const toEventPayload = (e: StoredEvent, repoName: string): Record<string, unknown> =>
  ({ event: e.type, id: e.id, seq: e.seq, repo: repoName, at: e.at, ...e.data });
