import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import knex, { Knex } from 'knex';
import { Config } from '../config';

export type Db = Knex | Knex.Transaction;
export type { Knex };

const migrationsDir = path.resolve(__dirname, '..', '..', 'migrations');

/** SQLite under the data dir by default; a postgres:// DATABASE_URL switches to PostgreSQL. */
export async function openDb(config: Config): Promise<Knex> {
  if (config.databaseUrl) {
    return knex({ client: 'pg', connection: config.databaseUrl, pool: { min: 0, max: 10 } });
  }
  // The database holds token ids, sealed secrets and the ledger: the server's user alone reads it.
  fs.mkdirSync(config.dataDir, { recursive: true, mode: 0o700 });
  const file = path.join(config.dataDir, 'cairn.sqlite');
  if (!fs.existsSync(file)) fs.closeSync(fs.openSync(file, 'a', 0o600));
  const db = knex({
    client: 'sqlite3',
    connection: { filename: file },
    useNullAsDefault: true,
    // One connection: SQLite has one writer anyway, and a single connection makes every
    // transaction serial instead of failing with SQLITE_BUSY.
    pool: {
      min: 1, max: 1,
      afterCreate: (conn: { exec: (sql: string, cb: (err: Error | null) => void) => void },
        done: (err: Error | null, conn: unknown) => void) => {
        // WAL + NORMAL survives a process kill (not a power cut) and keeps commits cheap.
        conn.exec('PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 10000;',
          (err) => done(err, conn));
      },
    },
  });
  return db;
}

export async function migrate(db: Knex): Promise<void> {
  await db.migrate.latest({ directory: migrationsDir, loadExtensions: ['.js'] });
}

/** True when a write failed on a unique constraint, on either engine. */
export function isUniqueViolation(err: unknown): boolean {
  const e = err as { code?: string; errno?: number; message?: string };
  return e?.code === '23505' || (e?.code === 'SQLITE_CONSTRAINT' && /UNIQUE|PRIMARY KEY/.test(e.message ?? ''));
}

/** Maps a unique-constraint failure to the caller's error; anything else is rethrown untouched. */
export function mapDbError(err: unknown, onDuplicate: () => Error): Error {
  return isUniqueViolation(err) ? onDuplicate() : (err as Error);
}

/** SQLITE_BUSY: another connection (a CLI command, another process) holds the write lock. */
const isBusy = (err: unknown): boolean => /SQLITE_BUSY/.test(String((err as { code?: string })?.code ?? '')) ||
  /SQLITE_BUSY/.test(String((err as Error)?.message ?? ''));

/**
 * Runs `fn` in a transaction, retried when SQLite answers busy. A deferred SQLite transaction that reads
 * and then writes fails at once (no busy wait) if another connection wrote in between; a retry sees the
 * new state and succeeds. The caller's work must therefore be safe to run again, as a transaction is.
 */
export async function inTransaction<T>(db: Knex, fn: (trx: Knex.Transaction) => Promise<T>): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await db.transaction(fn);
    } catch (err) {
      if (!isBusy(err) || attempt >= 40) throw err;
      await new Promise((r) => setTimeout(r, Math.min(25 * attempt, 500)));
    }
  }
}

export const now = (): string => new Date().toISOString().replace(/\.\d{3}Z$/, 'Z');

/** A moment `offsetMs` from now with milliseconds: for leases and schedules, compared as strings. */
export const instant = (offsetMs = 0): string => new Date(Date.now() + offsetMs).toISOString();

/**
 * The ids a claim query selects, locked for the caller's transaction; on PostgreSQL rows another
 * transaction holds are skipped (FOR UPDATE SKIP LOCKED). Two steps on purpose: an UPDATE … WHERE id IN
 * (SELECT … LIMIT n FOR UPDATE SKIP LOCKED) may run its subquery more than once and claim more than n rows.
 * SQLite has one writer: the transaction alone makes the claim exclusive.
 */
export async function lockedIds<T extends number | string = number>(db: Db, query: Knex.QueryBuilder): Promise<T[]> {
  if (db.client.config.client === 'pg') query.forUpdate().skipLocked();
  return (await query).map((r: { id: T }) => r.id);
}

/** This process, as the holder of a lease: `host:pid`. */
export const leaseHolder = (): string => `${os.hostname()}:${process.pid}`;

/**
 * Whether a lease (held by `host:pid` until `until`) has lost its holder: its time ran out, or it names a
 * process of this host that is no longer alive. This very pid is a predecessor's only at start (a container
 * restarts with the same pid); later it is us. One rule for every queue that leases work.
 */
export function leaseAbandoned(owner: string | null, until: string | null, atStart: boolean, isAlive: (pid: number) => boolean): boolean {
  if (until !== null && until < new Date().toISOString()) return true;
  if (!owner?.startsWith(`${os.hostname()}:`)) return false;
  const pid = Number(owner.slice(owner.lastIndexOf(':') + 1));
  return pid === process.pid ? atStart : !isAlive(pid);
}
