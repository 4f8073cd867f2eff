import type { Knex } from '../db';
import type { Logger } from '../log';
import type { ArchiveConfig } from '../config';
import type { Repo, Tenant } from '../store';

/** A ref update and a refusal as the protection policy speaks them (plain data: archive imports no stage to its left). */
export type RefUpdate = { ref: string; oldId: string; newId: string };
export type RefRefusal = { code: string; ref: string; reason: string };
export type Actor = { userName: string; userId: number | null; transport: 'internal' };

/** What the archive is handed by main.ts: its only ways to make repositories and to write refs. */
export type ArchiveDeps = {
  db: Knex;
  config: ArchiveConfig;
  reposDir: string;
  /** Scratch space for checkouts and downloads: each process works in its own `HOST-PID` dir under it. */
  workDir: string;
  gitEnv: NodeJS.ProcessEnv;
  log: Logger;
  /** The hook server's internal writes: push lock, policy, ledger, `push` event. Resolves to the refusals. */
  writeRefs: (actor: Actor, repo: Repo, updates: RefUpdate[]) => Promise<RefRefusal[]>;
  /** The API's own repository creation (row, bare repository, `repo.created` event). */
  createRepo: (tenant: Tenant, name: string, createdBy: string) => Promise<Repo>;
  /**
   * The argv that runs an admin's adjuster command: in the pipelines' sandbox when there is one (Cairn's data
   * and keys hidden, only `writable` writable), else `/bin/sh -c`.
   */
  confine: (command: string, writable: string[], cwd: string) => string[];
  /** The clone URLs of a repository, as the API gives them. */
  repoUrls: (repo: { tenantName: string; name: string }) => { readwrite: string; readonly: string };
};

/** One task's run: who asked, its scratch dir, and the signal a cancel raises. */
export type TaskRun = { actor: Actor; scratch: string; signal: AbortSignal };
