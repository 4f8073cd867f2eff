import fs from 'node:fs';
import path from 'node:path';
import http from 'node:http';
import net from 'node:net';
import type { Config } from './config';
import type { Logger } from './log';
import { openDb, migrate, Knex } from './db';
import type { Db } from './db';
import * as store from './store';
import { loadSigningKey, SecretBox } from './auth';
import { WebhookWorker } from './events';
import { baseGitEnv, clearOwnStaleLock, isProcessAlive, repoPath, wireRepo } from './git';
import { HookServer } from './transport/hook';
import { createHttpApp, createRepo, listenHttp } from './transport/http';
import { Archive } from './archive';
import { startSsh } from './transport/ssh';
import { Pipelines, chooseSandbox } from './pipelines';
import { ComposeWorker, submitCompose } from './composes';
import type { ComposeDeps } from './composes';
import { repoRole, ANONYMOUS } from './auth';
import os from 'node:os';

export type RunningServer = { httpPort: number; sshPort: number; stop(): Promise<void> };

/** Wiring only: config → database → repositories → listeners. */
export async function startServer(config: Config, log: Logger): Promise<RunningServer> {
  // The hook is the protection: a server that could not run it must not start.
  fs.accessSync(path.join(config.hooksDir, 'pre-receive'), fs.constants.X_OK);
  const db = await openDb(config);
  await migrate(db);
  const signingKey = loadSigningKey(config.keysDir);
  const secrets = SecretBox.load(config.keysDir);
  fs.mkdirSync(config.reposDir, { recursive: true });
  const gitEnv = baseGitEnv(config.dataDir);

  const hooks = new HookServer(db, gitEnv, config.reposDir, log.child({ mod: 'hook' }));
  await hooks.listen();
  await prepareRepos(db, config, gitEnv, log);
  // Pushes this host allowed but never settled (the server was killed): once any receive-pack that
  // outlived its server is gone, the disk says what landed. One still running is left to the next verdict.
  const leftovers = await hooks.settleLeftovers({ host: os.hostname() }, 20_000);
  if (leftovers.settled + leftovers.running > 0) log.info(leftovers, 'settled pushes left pending by a previous process');

  const ssh = await startSsh({ config, db, log, hooks, gitEnv });
  let httpPort = config.httpPort;
  const webhooks = new WebhookWorker(db, (sealed) => secrets.open(sealed), config.webhookRetryBaseMs, isProcessAlive,
    log.child({ mod: 'webhooks' }));
  const reclaimed = await webhooks.reclaimOrphans();
  if (reclaimed > 0) log.info({ reclaimed }, 'webhook deliveries a previous process was sending are queued again');
  webhooks.start();
  // Takes the caller's transaction: SQLite has one connection, and a query outside it would wait forever.
  const canRead = async (q: Db, userName: string, repo: store.Repo) => {
    const user = await store.findUserByName(q, userName);
    return (await repoRole(q, user ? { kind: 'user', user } : ANONYMOUS, repo)) !== 'none';
  };
  const sandbox = chooseSandbox(config.buildSandbox);
  if (sandbox.kind === 'none') log.warn('pipeline commands run without a sandbox (bubblewrap unavailable or CAIRN_BUILD_SANDBOX=none): they can read what the server user can');
  const publicUrl = () => config.publicUrl ?? `http://${config.bind.includes(':') ? `[${config.bind}]` : config.bind}:${httpPort}`;
  const composeDeps: ComposeDeps = { db, log: log.child({ mod: 'composes' }), gitEnv, artifactsDir: config.artifactsDir, composesDir: config.composesDir,
    repoDir: (repo) => repoPath(config.reposDir, repo.tenantName, repo.name), publicUrl, workers: config.composeWorkers,
    defaultTtl: config.composeDefaultTtl, maxTtl: config.composeMaxTtl, canRead };
  const composes = new ComposeWorker(composeDeps, isProcessAlive);
  const pipelines = new Pipelines({ db, log: log.child({ mod: 'pipelines' }), gitEnv, dataDir: config.dataDir, artifactsDir: config.artifactsDir,
    repoDir: (repo) => repoPath(config.reposDir, repo.tenantName, repo.name), workers: config.workers, logMaxBytes: config.runLogMaxBytes,
    retentionIntervalMs: config.retentionIntervalMs, publicUrl,
    writeRefs: (repo, updates) => hooks.writeRefs({ userName: 'cairn', userId: null, transport: 'internal' }, repo, updates),
    canRead, sandbox, secretDirs: [config.keysDir],
    submitCompose: (trx, c) => submitCompose(trx, composeDeps, { ...c, sourceType: 'build', flags: [] }), composed: () => composes.wake() }, isProcessAlive);
  const archive = new Archive({ confine: (command, writable, cwd) => sandbox.argv(command, { writable, readOnly: [], hidden: [config.dataDir, config.keysDir], cwd }), db, config: config.archive, reposDir: config.reposDir, workDir: path.join(config.dataDir, 'archive-work'),
    gitEnv, log: log.child({ mod: 'archive' }), writeRefs: (actor, repo, updates) => hooks.writeRefs(actor, repo, updates),
    createRepo: (tenant, name, createdBy) => createRepo({ db, gitEnv, config }, tenant, name, false, createdBy),
    repoUrls: (r) => ({ readonly: `${publicUrl()}/${r.tenantName}/${r.name}.git`, readwrite: sshUrl(publicUrl(), ssh.port, `${r.tenantName}/${r.name}`) }) },
  isProcessAlive);
  const reclaimedTasks = await archive.tasks.reclaimOrphans();
  if (reclaimedTasks > 0) log.info({ reclaimed: reclaimedTasks }, 'archive tasks a previous process was running are queued again');
  archive.tasks.start();
  hooks.onAccepted = () => { pipelines.nudge(); webhooks.nudge(); };
  const app = createHttpApp({ config, db, log, signingKey, secrets, gitEnv, hooks, pipelines, composes, composeDeps, publicUrl, sshPort: () => ssh.port, archive });
  const server: http.Server = await listenHttp(app, config.httpPort, config.bind);
  httpPort = (server.address() as net.AddressInfo).port;
  await pipelines.start();
  await composes.start();
  log.info({ http_port: httpPort, ssh_port: ssh.port, hook_port: hooks.port, bind: config.bind, data_dir: config.dataDir },
    `cairn listening: http on ${config.bind}:${httpPort}, ssh on ${config.bind}:${ssh.port}`);

  return {
    httpPort,
    sshPort: ssh.port,
    async stop() {
      await new Promise<void>((resolve) => { server.close(() => resolve()); server.closeIdleConnections(); });
      await ssh.close();
      await pipelines.stop();
      await composes.stop();
      await webhooks.stop();
      await archive.tasks.stop();
      await hooks.close();
      await db.destroy();
    },
  };
}

/** The archive's readwrite URL; URL.hostname keeps an IPv6 address in its brackets already. */
const sshUrl = (base: string, port: number, repo: string): string => `ssh://git@${new URL(base).hostname}:${port}/${repo}.git`;

/** Every repository gets the current hook and settings, so an upgrade reaches repositories made by an older Cairn. */
async function prepareRepos(db: Knex, config: Config, gitEnv: NodeJS.ProcessEnv, log: Logger): Promise<void> {
  let rewired = 0;
  for (const repo of await store.allRepos(db)) {
    const dir = repoPath(config.reposDir, repo.tenantName, repo.name);
    if (!fs.existsSync(dir)) { log.error({ repo: `${repo.tenantName}/${repo.name}`, dir }, 'repository missing on disk'); continue; }
    if (await wireRepo(gitEnv, config.hooksDir, dir)) rewired++;
    if (clearOwnStaleLock(dir)) log.warn({ dir }, 'cleared a push lock left by a previous process');
  }
  if (rewired > 0) log.info({ rewired }, 'repositories re-wired to the current hooks and settings');
}
