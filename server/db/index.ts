import fs from 'node:fs';
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
  fs.mkdirSync(config.dataDir, { recursive: true });
  const db = knex({
    client: 'sqlite3',
    connection: { filename: path.join(config.dataDir, 'cairn.sqlite') },
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

export const now = (): string => new Date().toISOString().replace(/\.\d{3}Z$/, 'Z');
