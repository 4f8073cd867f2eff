import fs from 'node:fs';
import path from 'node:path';
import { Command, Option } from 'commander';
import { ConfigError, ConfigFlags, loadConfig } from '../config';
import { createLogger } from '../log';
import { CairnError } from '../errors';
import { openDb, migrate } from '../db';
import * as store from '../store';
import { issueToken, loadSigningKey, parsePublicKey } from '../auth';
import { nameProblem } from '../names';
import { baseGitEnv, listRefs, repoPath } from '../git';
import { verifyLedger } from '../events';
import { startServer } from '../main';

const configOptions = (cmd: Command): Command => cmd
  .addOption(new Option('--data-dir <dir>', 'data directory (CAIRN_DATA_DIR, default ./data)'))
  .addOption(new Option('--keys-dir <dir>', 'keys directory (CAIRN_KEYS_DIR, default ./keys)'))
  .addOption(new Option('--database-url <url>', 'postgres:// URL (DATABASE_URL); SQLite when unset'))
  .addOption(new Option('--log-level <level>', 'pino log level (CAIRN_LOG_LEVEL, default info)'));

const flagsOf = (o: Record<string, string | undefined>): ConfigFlags =>
  Object.fromEntries(Object.entries(o).filter(([, v]) => typeof v === 'string')) as ConfigFlags;

/** Admin commands work on the same data without a server: open, migrate, act, close. Results alone on stdout. */
async function withDb<T>(opts: Record<string, string | undefined>, act: (db: import('../db').Knex, config: ReturnType<typeof loadConfig>) => Promise<T>): Promise<T> {
  const config = loadConfig(process.env, flagsOf(opts));
  const db = await openDb(config);
  try {
    await migrate(db);
    return await act(db, config);
  } finally {
    await db.destroy();
  }
}

export function buildCli(): Command {
  const program = new Command('cairn').description('Git hosting for build systems: history is never rewritten.');
  configOptions(program.command('serve').description('run the server')
    .addOption(new Option('--http-port <port>', 'HTTP port (CAIRN_HTTP_PORT, default 8080; 0 picks a free one)'))
    .addOption(new Option('--ssh-port <port>', 'SSH port (CAIRN_SSH_PORT, default 2222)'))
    .addOption(new Option('--bind <addr>', 'address to listen on (CAIRN_BIND, default 127.0.0.1)'))
    .addOption(new Option('--public-url <url>', 'base of URLs the API returns (CAIRN_PUBLIC_URL)')))
    .action(async (opts) => {
      const config = loadConfig(process.env, flagsOf(opts));
      const log = createLogger(config.logLevel);
      const server = await startServer(config, log);
      const stop = (signal: string) => {
        log.info({ signal }, 'stopping');
        server.stop().then(() => process.exit(0), (err) => { log.error({ err }, 'stop failed'); process.exit(1); });
      };
      process.once('SIGTERM', () => stop('SIGTERM'));
      process.once('SIGINT', () => stop('SIGINT'));
    });

  const admin = program.command('admin').description('administer the data directly, without a running server');
  configOptions(admin.command('create-user <name>').description('create a user').option('--admin', 'make a site admin'))
    .action(async (name: string, opts) => {
      const problem = nameProblem('user', name);
      if (problem) throw new CairnError('invalid_field', problem);
      const user = await withDb(opts, (db) => store.createUser(db, name, Boolean(opts.admin)));
      process.stdout.write(`${user.name}\n`);
    });
  configOptions(admin.command('token <name>').description("print a new token for the user (it is shown only once)")
    .option('--expires-in <seconds>', 'lifetime in seconds (default 30 days)'))
    .action(async (name: string, opts) => {
      const token = await withDb(opts, async (db, config) => {
        const user = await store.findUserByName(db, name);
        if (!user) throw new CairnError('not_found', `user ${name} not found`);
        const expiresIn = opts.expiresIn === undefined ? undefined : Number(opts.expiresIn);
        return issueToken(db, loadSigningKey(config.keysDir), user, expiresIn);
      });
      process.stdout.write(`${token.token}\n`);
    });
  configOptions(admin.command('add-key <name> <file>').description("register the OpenSSH public key in FILE for the user; prints its fingerprint"))
    .action(async (name: string, file: string, opts) => {
      const key = parsePublicKey(fs.readFileSync(file, 'utf8'));
      const saved = await withDb(opts, async (db) => {
        const user = await store.findUserByName(db, name);
        if (!user) throw new CairnError('not_found', `user ${name} not found`);
        return store.insertKey(db, { fingerprint: key.fingerprint, type: key.type, title: path.basename(file), publicKey: key.line,
          owner: { kind: 'user', userId: user.id }, write: false });
      });
      process.stdout.write(`${saved.fingerprint}\n`);
    });
  configOptions(admin.command('verify').description("check every repository's push ledger and that its refs on disk match it"))
    .action(async (opts) => {
      const problems = await withDb(opts, async (db, config) => {
        const gitEnv = baseGitEnv(config.dataDir);
        const found: string[] = [];
        const repos = await store.allRepos(db);
        for (const repo of repos) {
          const name = `${repo.tenantName}/${repo.name}`;
          const dir = repoPath(config.reposDir, repo.tenantName, repo.name);
          if (!fs.existsSync(dir)) { found.push(`${name}: repository missing on disk`); continue; }
          const pushes = [];
          for (let after = 0; ;) {
            const page = await store.listAcceptedPushes(db, repo.id, 1000, after);
            pushes.push(...page);
            if (page.length < 1000) break;
            after = page[page.length - 1].seq as number;
          }
          const disk = new Map((await listRefs(gitEnv, dir, true)).map((r) => [r.ref, r.id]));
          found.push(...verifyLedger(pushes, disk).map((p) => `${name}: ${p}`));
        }
        process.stderr.write(`checked ${repos.length} ${repos.length === 1 ? 'repository' : 'repositories'}\n`);
        return found;
      });
      for (const p of problems) process.stdout.write(`${p}\n`);
      if (problems.length > 0) process.exitCode = 1;
      else process.stdout.write('ok\n');
    });
  return program;
}

export function main(argv: string[]): void {
  // One failed promise somewhere (a client that misbehaves) must not take every other connection down.
  process.on('unhandledRejection', (err) => process.stderr.write(`cairn: unhandled rejection: ${(err as Error)?.stack ?? err}\n`));
  buildCli().parseAsync(argv, { from: 'user' }).catch((err) => {
    if (err instanceof CairnError || err instanceof ConfigError) {
      process.stderr.write(`cairn: ${err.message}\n`);
      process.exit(err instanceof CairnError && err.code === 'name_taken' ? 3 : 2);
    }
    process.stderr.write(`cairn: ${(err as Error).stack ?? err}\n`);
    process.exit(1);
  });
}
