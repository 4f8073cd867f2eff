import { Server, utils } from 'ssh2';
import type { Connection, ServerChannel, Session } from 'ssh2';
import net from 'node:net';
import { CairnError } from '../../errors';
import type { Config } from '../../config';
import type { Knex } from '../../db';
import type { Logger } from '../../log';
import { nameProblem } from '../../names';
import type { Repo } from '../../store';
import { fingerprintOf, principalFromKey, principalName, readableRepos, repoRole, requireRepoRole } from '../../auth';
import type { Principal } from '../../auth';
import { PktLineError, repoPath, safeGitProtocol, serveGit } from '../../git';
import type { GitService } from '../../git';
import { metrics } from '../../metrics';
import type { HookServer } from '../hook';
import { feedReceivePack, PushContext, readPushCommands, screenPush, startReceivePack } from '../push';
import { loadHostKeys } from './host-keys';

export type SshDeps = { config: Config; db: Knex; log: Logger; hooks: HookServer; gitEnv: NodeJS.ProcessEnv };

/**
 * `git-upload-pack '/tenant/repo.git'` and its kin, as OpenSSH clients send them (ssh:// URLs bring the
 * leading slash, scp-style ones do not). Anything else — another command, unbalanced quotes, a `;` — is no match.
 */
const GIT_COMMAND = /^git[- ](upload-pack|receive-pack|upload-archive) (?:'\/?([^'/\s]+)\/([^'/\s]+?)(?:\.git)?\/?'|\/?([^'/\s]+)\/([^'/\s]+?)(?:\.git)?\/?)$/;

export type ParsedCommand = { kind: 'info' } | { kind: 'git'; service: GitService; tenant: string; repo: string } | { kind: 'refused'; reason: string };

export function parseCommand(command: string): ParsedCommand {
  const trimmed = command.trim();
  if (trimmed === '' || trimmed === 'info') return { kind: 'info' };
  const m = GIT_COMMAND.exec(trimmed);
  if (!m) return { kind: 'refused', reason: 'Cairn runs git-upload-pack, git-receive-pack, git-upload-archive and info; nothing else' };
  const tenant = m[2] ?? m[4]; const repo = m[3] ?? m[5];
  if (nameProblem('tenant', tenant) || nameProblem('repo', repo)) return { kind: 'refused', reason: `no repository ${tenant}/${repo}` };
  return { kind: 'git', service: `git-${m[1]}` as GitService, tenant, repo };
}

export async function startSsh(deps: SshDeps): Promise<{ port: number; close(): Promise<void> }> {
  const log = deps.log.child({ mod: 'ssh' });
  const hostKeys = loadHostKeys(deps.config.keysDir);
  for (const k of hostKeys) log.info({ type: k.type, fingerprint: k.fingerprint }, 'ssh host key');
  const clients = new Set<Connection>();
  const server = new Server({ hostKeys: hostKeys.map((k) => k.privateKey), ident: 'Cairn' }, (client) => {
    clients.add(client);
    client.on('close', () => clients.delete(client));
    onClient(deps, log, client);
  });
  server.on('error', (err: Error) => log.warn({ err }, 'ssh server error'));
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(deps.config.sshPort, deps.config.bind, () => { server.off('error', reject); resolve(); });
  });
  return {
    port: (server.address() as net.AddressInfo).port,
    // Stopping ends every connection: a client left open must not keep the server from stopping.
    close: () => new Promise<void>((resolve) => { server.close(() => resolve()); for (const c of clients) c.end(); }),
  };
}

/** The signature algorithms each key type may sign with; anything else is refused before verifying. */
const SIGNATURE_ALGOS: Record<string, string[]> = {
  'ssh-ed25519': ['ssh-ed25519'], 'ssh-rsa': ['ssh-rsa', 'rsa-sha2-256', 'rsa-sha2-512'],
  'ecdsa-sha2-nistp256': ['ecdsa-sha2-nistp256'], 'ecdsa-sha2-nistp384': ['ecdsa-sha2-nistp384'], 'ecdsa-sha2-nistp521': ['ecdsa-sha2-nistp521'],
};
const AUTH_TIMEOUT_MS = 30_000;
const MAX_AUTH_ATTEMPTS = 10;
const MAX_SESSIONS = 10;

function onClient(deps: SshDeps, log: Logger, client: Connection): void {
  let fingerprint: string | null = null;
  let attempts = 0;
  let sessions = 0;
  // Whoever has not signed in within the time has nothing to do here.
  const authTimer = setTimeout(() => client.end(), AUTH_TIMEOUT_MS);
  client.on('close', () => clearTimeout(authTimer));
  client.on('error', (err) => log.debug({ err: err.message }, 'ssh client error'));
  client.on('authentication', (ctx) => {
    if (++attempts > MAX_AUTH_ATTEMPTS) { client.end(); return; }
    if (ctx.method !== 'publickey') { ctx.reject(['publickey']); return; }
    const key = utils.parseKey(ctx.key.data);
    if (key instanceof Error || Array.isArray(key) || !(SIGNATURE_ALGOS[key.type] ?? []).includes(ctx.key.algo)) { ctx.reject(['publickey']); return; }
    const fp = fingerprintOf(ctx.key.data);
    principalFromKey(deps.db, fp).then((principal) => {
      if (!principal) { ctx.reject(['publickey']); return; }
      // Without a signature the client only asks whether this key would do.
      if (!ctx.signature) { ctx.accept(); return; }
      // ssh2's verify() answers an Error (truthy) when the check itself fails: only `true` is a valid signature.
      if (key.verify(ctx.blob!, ctx.signature, ctx.hashAlgo) !== true) { ctx.reject(['publickey']); return; }
      fingerprint = fp;
      clearTimeout(authTimer);
      ctx.accept();
    }).catch((err) => { log.error({ err }, 'ssh authentication failed'); ctx.reject(['publickey']); });
  });
  client.on('ready', () => {
    client.on('session', (accept, reject) => {
      if (++sessions > MAX_SESSIONS) { reject(); return; }
      onSession(deps, log, accept(), () => fingerprint!, client);
    });
    client.on('tcpip', (_accept, reject) => reject());
    client.on('request', (_accept, reject) => reject?.());
    client.on('openssh.streamlocal', (_accept, reject) => reject());
  });
}

function onSession(deps: SshDeps, log: Logger, session: Session, fingerprint: () => string, client: Connection): void {
  let gitProtocol: string | undefined;
  session.on('env', (accept, _reject, info) => {
    if (info.key === 'GIT_PROTOCOL') gitProtocol = safeGitProtocol(info.val);
    accept?.();
  });
  session.on('pty', (_accept, reject) => reject?.());
  session.on('x11', (_accept, reject) => reject?.());
  session.on('auth-agent', (_accept, reject) => reject?.());
  session.on('window-change', (_accept, reject) => reject?.());
  session.on('signal', (_accept, reject) => reject?.());
  // ssh2's accept() gives nothing for a second request on a session that already runs one.
  session.on('subsystem', (accept, _reject, info) => {
    const channel = accept();
    if (channel) refuse(channel, `the ${info.name} subsystem is not available; Cairn serves git only`);
  });
  const run = (channel: ServerChannel | undefined, command: string) => {
    if (!channel) return;
    // Looked up again for every session: a key or user removed a moment ago opens nothing more.
    principalFromKey(deps.db, fingerprint()).then((principal) => {
      if (!principal) return refuse(channel, 'this key is no longer registered');
      const parsed = parseCommand(command);
      if (parsed.kind === 'info') return info(deps, channel, principal);
      if (parsed.kind === 'refused') return refuse(channel, parsed.reason);
      return serveGitSsh(deps, log, channel, principal, parsed, client, gitProtocol);
    }).catch((err) => {
      log.error({ err }, 'ssh session failed');
      refuse(channel, 'internal error');
    });
  };
  session.on('shell', (accept) => run(accept(), ''));
  session.on('exec', (accept, _reject, info) => run(accept(), info.command));
}

function refuse(channel: ServerChannel, reason: string, code = 1): void {
  // Titles and names are printable already; this keeps any other text from steering a terminal.
  channel.stderr.write(`cairn: ${reason.replace(/[\x00-\x1f\x7f]/g, '?')}\n`);
  channel.exit(code);
  channel.end();
}

/** Like gitolite's info: who you are, and every repository you can reach with what you may do there. */
async function info(deps: SshDeps, channel: ServerChannel, principal: Principal): Promise<void> {
  const repos = await readableRepos(deps.db, principal);
  const who = principal.kind === 'deploy_key' ? `deploy key "${principal.key.title}"` : principalName(principal);
  const lines = [`hello ${who}, this is Cairn (git over SSH); you can reach:`, ''];
  for (const repo of repos) {
    const role = await repoRole(deps.db, principal, repo);
    if (role === 'none') continue;
    const flags = `${'R'} ${role !== 'read' ? 'W' : ' '} ${role === 'admin' ? 'A' : ' '}`;
    lines.push(` ${flags}  ${repo.tenantName}/${repo.name}${repo.isArchived ? ' (archived)' : ''}`);
  }
  channel.write(`${lines.join('\n')}\n`);
  channel.exit(0);
  channel.end();
}

async function serveGitSsh(deps: SshDeps, log: Logger, channel: ServerChannel, principal: Principal,
  cmd: { service: GitService; tenant: string; repo: string }, client: Connection, gitProtocol?: string): Promise<void> {
  let repo: Repo;
  try {
    ({ repo } = await requireRepoRole(deps.db, principal, cmd.tenant, cmd.repo, cmd.service === 'git-receive-pack' ? 'write' : 'read'));
  } catch (err) {
    if (err instanceof CairnError) return refuse(channel, err.code === 'not_found' ? `repository ${cmd.tenant}/${cmd.repo} not found` : err.message);
    throw err;
  }
  metrics.gitServices.inc({ service: cmd.service, transport: 'ssh' });
  const dir = repoPath(deps.config.reposDir, repo.tenantName, repo.name);
  if (cmd.service !== 'git-receive-pack') {
    const child = serveGit({ service: cmd.service, repoPath: dir, env: deps.gitEnv, gitProtocol, statelessRpc: false });
    pipeChild(channel, child, client);
    // A reader that hangs up has nothing more coming; a pusher's receive-pack is left to see its input end
    // (killing it mid-update could leave a ref's lock file behind).
    channel.on('close', () => { if (child.exitCode === null) child.kill('SIGTERM'); });
    channel.pipe(child.stdin!);
    child.stdin!.on('error', () => { /* the client hung up; git's exit says the rest */ });
    return;
  }
  const push: PushContext = { log: deps.log, hooks: deps.hooks, gitEnv: deps.gitEnv, maxPushBytes: deps.config.maxPushBytes,
    hooksDir: deps.config.hooksDir, principal, repo, repoPath: dir, transport: 'ssh' };
  const { child, recorded } = startReceivePack(push, false, gitProtocol);
  const finished = pipeChild(channel, child, client, recorded);
  try {
    const request = await readPushCommands(channel);
    if (request.commands.length === 0) { child.stdin!.end(request.head); return; }
    const refusal = screenPush(push, request);
    if (refusal) {
      // receive-pack has advertised and waits for commands; the answer comes from Cairn instead.
      finished.detach();
      child.kill('SIGKILL');
      channel.resume();
      channel.write(refusal);
      channel.exit(0);
      channel.end();
      return;
    }
    feedReceivePack(child, request, channel);
  } catch (err) {
    finished.detach();
    child.kill('SIGKILL');
    if (err instanceof PktLineError) return refuse(channel, `malformed push request: ${err.message}`, 128);
    log.info({ err: (err as Error).message }, 'ssh push ended before its commands');
    channel.end();
  }
}

/** Streams a git child's output to the channel and its exit status back; detach() takes the channel back. */
function pipeChild(channel: ServerChannel, child: import('node:child_process').ChildProcess, client: Connection,
  recorded?: Promise<void>): { detach(): void } {
  let attached = true;
  // A client gone mid-conversation: git's output goes nowhere (drained, not piped into a dead channel that
  // would never take it), so git still finishes — a push is still settled and its lock given back.
  const drain = () => {
    child.stdout!.unpipe(channel); child.stderr!.unpipe(channel.stderr);
    child.stdout!.resume(); child.stderr!.resume();
  };
  client.once('close', drain);
  child.once('close', () => client.off('close', drain));
  child.on('error', (err) => { if (attached) refuse(channel, `could not start git: ${err.message}`); attached = false; });
  child.stdout!.pipe(channel, { end: false });
  child.stderr!.pipe(channel.stderr, { end: false });
  child.on('close', (code) => {
    if (!attached) return;
    // A push's exit status goes out once it is recorded: when `git push` returns, the ledger has it.
    const exit = () => { channel.exit(code ?? 1); channel.end(); };
    if (recorded) recorded.then(exit, exit); else exit();
  });
  return {
    detach() {
      attached = false;
      child.stdout!.unpipe(channel);
      child.stderr!.unpipe(channel.stderr);
    },
  };
}
