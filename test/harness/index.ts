import { ChildProcess, spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import Ajv from 'ajv';

export const ROOT = path.resolve(__dirname, '..', '..', '..');
const CLI = path.join(ROOT, 'bin', 'cairn.js');

export type Run = { code: number; stdout: string; stderr: string };

/** Runs a program with an argument array and collects everything (never a shell). */
export function run(cmd: string, args: string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv; input?: string | Buffer } = {}): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { cwd: opts.cwd, env: opts.env ?? process.env });
    const out: Buffer[] = []; const err: Buffer[] = [];
    child.stdout.on('data', (b) => out.push(b));
    child.stderr.on('data', (b) => err.push(b));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code: code ?? -1, stdout: Buffer.concat(out).toString(), stderr: Buffer.concat(err).toString() }));
    child.stdin.on('error', () => { /* the program did not read its input; its exit code tells */ });
    child.stdin.end(opts.input ?? '');
  });
}

export const tmpDir = (prefix = 'cairn-test-'): string => fs.mkdtempSync(path.join(os.tmpdir(), prefix));

/** A git client that knows nothing of the developer's own config. */
const clientHome = tmpDir('cairn-client-home-');
fs.writeFileSync(path.join(clientHome, '.gitconfig'),
  '[user]\n\tname = Test\n\temail = test@example.com\n[init]\n\tdefaultBranch = main\n[advice]\n\tdetachedHead = false\n');
export const gitEnv: NodeJS.ProcessEnv = { PATH: process.env.PATH, HOME: clientHome, GIT_TERMINAL_PROMPT: '0',
  GIT_CONFIG_NOSYSTEM: '1', LANG: 'C' };
export const git = (cwd: string, ...args: string[]): Promise<Run> => run('git', args, { cwd, env: gitEnv });
export const gitEnvRun = (cwd: string, env: NodeJS.ProcessEnv, ...args: string[]): Promise<Run> =>
  run('git', args, { cwd, env: { ...gitEnv, ...env } });

/** Asserting helper for setup steps: a failing setup command fails the test with git's own words. */
export async function must(r: Promise<Run> | Run): Promise<Run> {
  const done = await r;
  if (done.code !== 0) throw new Error(`command failed (${done.code}): ${done.stderr}${done.stdout}`);
  return done;
}

export type ApiResult = { status: number; body: any; headers: Headers };

type Operation = { responses: Record<string, { content?: { 'application/json': { schema: object } } }> };

export class TestServer {
  child: ChildProcess | null = null;
  port = 0;
  sshPort = 0;
  stderr = '';
  adminToken = '';
  private openapi: { paths: Record<string, Record<string, Operation>> } | null = null;
  private readonly ajv = new Ajv({ strict: false });
  private readonly validators = new Map<object, ReturnType<Ajv['compile']>>();

  constructor(readonly dataDir: string, readonly keysDir: string, readonly extraEnv: NodeJS.ProcessEnv = {}) {
    // The contract's time format, exactly: ISO 8601 UTC to the second.
    this.ajv.addFormat('date-time', /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
  }

  get env(): NodeJS.ProcessEnv {
    return { PATH: process.env.PATH, CAIRN_DATA_DIR: this.dataDir, CAIRN_KEYS_DIR: this.keysDir,
      CAIRN_HTTP_PORT: '0', CAIRN_SSH_PORT: '0', CAIRN_LOG_LEVEL: 'info', ...this.extraEnv };
  }

  cli(...args: string[]): Promise<Run> {
    return run(process.execPath, [CLI, ...args], { env: this.env, cwd: this.dataDir });
  }

  async start(): Promise<void> {
    this.stderr = '';
    const child = spawn(process.execPath, [CLI, 'serve'], { env: this.env, stdio: ['ignore', 'ignore', 'pipe'] });
    this.child = child;
    this.port = await new Promise<number>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`server did not start:\n${this.stderr}`)), 20_000);
      child.stderr!.on('data', (b: Buffer) => {
        this.stderr += b.toString();
        const m = /"http_port":(\d+),"ssh_port":(\d+)/.exec(this.stderr);
        if (m) { clearTimeout(timer); this.sshPort = Number(m[2]); resolve(Number(m[1])); }
      });
      child.on('exit', (code) => { clearTimeout(timer); reject(new Error(`server exited (${code}):\n${this.stderr}`)); });
    });
    child.removeAllListeners('exit');
  }

  /** Stops the server the way an operator would (SIGTERM), or kills it outright (SIGKILL). */
  async stop(signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    const child = this.child;
    if (!child || child.exitCode !== null) return;
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill(signal);
    await exited;
    this.child = null;
  }

  get base(): string { return `http://127.0.0.1:${this.port}`; }

  /** A git URL, with Basic credentials when given. */
  url(repo: string, auth?: { user: string; token: string }): string {
    return auth ? `http://${auth.user}:${auth.token}@127.0.0.1:${this.port}/${repo}.git` : `${this.base}/${repo}.git`;
  }

  /**
   * Calls the API and checks the answer against the OpenAPI document the server serves: every status a
   * route gives must be documented, with a body of the documented shape. So the document is tested by
   * every API call any test makes.
   */
  async api(method: string, apiPath: string, body?: unknown, token?: string, headers: Record<string, string> = {}): Promise<ApiResult> {
    const res = await fetch(`${this.base}${apiPath}`, {
      method, headers: { ...(token ? { authorization: `Bearer ${token}` } : {}),
        ...(body !== undefined ? { 'content-type': 'application/json' } : {}), ...headers },
      body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
    });
    const text = await res.text();
    let parsed: unknown = text;
    if ((res.headers.get('content-type') ?? '').includes('json') && text) parsed = JSON.parse(text);
    await this.checkAgainstDocument(method, apiPath, res.status, parsed);
    return { status: res.status, body: parsed, headers: res.headers };
  }

  private async checkAgainstDocument(method: string, apiPath: string, status: number, body: unknown): Promise<void> {
    const pathOnly = apiPath.split('?')[0];
    if (!pathOnly.startsWith('/api/v1/') || pathOnly === '/api/v1/openapi.json') return;
    if (!this.openapi) this.openapi = await (await fetch(`${this.base}/api/v1/openapi.json`)).json() as never;
    const rel = pathOnly.slice('/api/v1'.length);
    const entry = Object.entries(this.openapi!.paths).find(([template]) =>
      new RegExp(`^${template.replace(/\{\w+\}/g, '[^/]+')}$`).test(rel) &&
      !Object.keys(this.openapi!.paths).some((other) => other !== template && other === rel));
    if (!entry) {
      if (status === 404 || status === 405) return;
      throw new Error(`${method} ${rel} answered ${status} but is not in the OpenAPI document`);
    }
    const op = entry[1][method.toLowerCase()];
    if (!op) {
      if (status === 405) return;
      throw new Error(`${method} ${entry[0]} is not in the OpenAPI document`);
    }
    // Errors every route can give (400 malformed, 413 too large) share one documented shape.
    const documented = op.responses[String(status)] ?? (status >= 400 ? op.responses['422'] : undefined);
    if (!documented) throw new Error(`${method} ${entry[0]} answered ${status}, which the OpenAPI document does not list`);
    const schema = documented.content?.['application/json']?.schema;
    if (!schema) return;
    let validate = this.validators.get(schema);
    if (!validate) { validate = this.ajv.compile(schema); this.validators.set(schema, validate); }
    if (!validate(body)) {
      throw new Error(`${method} ${entry[0]} ${status}: body does not match the document: ${this.ajv.errorsText(validate.errors)}\n${JSON.stringify(body).slice(0, 500)}`);
    }
  }

  /** The refs on disk, the ground truth (not what the API says). */
  async diskRefs(repo: string): Promise<Map<string, string>> {
    const out = await must(git(this.repoDir(repo), 'for-each-ref', '--format=%(refname) %(objectname)'));
    return new Map(out.stdout.split('\n').filter(Boolean).map((l) => l.split(' ') as [string, string]));
  }

  /** An ssh:// git URL, or the scp form `git@host:tenant/repo.git` (which needs the port from GIT_SSH_COMMAND). */
  sshUrl(repo: string, scp = false): string {
    return scp ? `git@127.0.0.1:${repo}.git` : `ssh://git@127.0.0.1:${this.sshPort}/${repo}.git`;
  }

  repoDir(repo: string): string { return path.join(this.dataDir, 'repos', `${repo}.git`); }

  /** Makes a user (through the API, as the admin) and gives back a token for them. */
  async user(name: string, admin = false): Promise<string> {
    const created = await this.api('POST', '/api/v1/users', { name, admin }, this.adminToken);
    if (created.status !== 201) throw new Error(`creating ${name}: ${JSON.stringify(created.body)}`);
    const t = await this.api('POST', `/api/v1/users/${name}/tokens`, {}, this.adminToken);
    return t.body.token;
  }

  async repo(tenant: string, name: string, extra: Record<string, unknown> = {}): Promise<void> {
    const t = await this.api('POST', '/api/v1/tenants', { name: tenant }, this.adminToken);
    if (t.status !== 201 && t.status !== 409) throw new Error(`tenant ${tenant}: ${JSON.stringify(t.body)}`);
    const r = await this.api('POST', `/api/v1/tenants/${tenant}/repos`, { name, ...extra }, this.adminToken);
    if (r.status !== 201) throw new Error(`repo ${tenant}/${name}: ${JSON.stringify(r.body)}`);
  }
}

/**
 * With CAIRN_TEST_PG set (a postgres:// URL of a role that may create databases), every test server gets a
 * fresh PostgreSQL database instead of SQLite: the same tests, the other engine.
 */
export const TEST_PG = process.env.CAIRN_TEST_PG || null;

async function freshPgDatabase(): Promise<string> {
  const { Client } = await import('pg');
  const name = `cairn_t_${crypto.randomBytes(6).toString('hex')}`;
  const admin = new Client({ connectionString: TEST_PG! });
  await admin.connect();
  try { await admin.query(`CREATE DATABASE ${name}`); } finally { await admin.end(); }
  const url = new URL(TEST_PG!);
  url.pathname = `/${name}`;
  return url.toString();
}

/** One server per test file: a temp data dir, real SQLite (or PostgreSQL), port 0, and an admin made with the CLI. */
export async function startTestServer(extraEnv: NodeJS.ProcessEnv = {}): Promise<TestServer> {
  if (TEST_PG && !extraEnv.DATABASE_URL) extraEnv = { ...extraEnv, DATABASE_URL: await freshPgDatabase() };
  const dir = tmpDir();
  const server = new TestServer(path.join(dir, 'data'), path.join(dir, 'keys'), extraEnv);
  fs.mkdirSync(server.dataDir, { recursive: true });
  await must(server.cli('admin', 'create-user', 'admin', '--admin'));
  server.adminToken = (await must(server.cli('admin', 'token', 'admin'))).stdout.trim();
  await server.start();
  return server;
}

/** Pids of the processes whose command line contains `token` (a build's processes, seen from outside its sandbox). */
export function processesWith(token: string): number[] {
  const pids: number[] = [];
  for (const d of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(d) || Number(d) === process.pid) continue;
    try { if (fs.readFileSync(`/proc/${d}/cmdline`, 'utf8').split('\0').join(' ').includes(token)) pids.push(Number(d)); } catch { /* gone */ }
  }
  return pids;
}

/** A fresh working copy with one commit, its remote pointed at `url`. */
export async function workTree(url: string, message = 'first'): Promise<string> {
  const dir = tmpDir('cairn-work-');
  await must(git(dir, 'init', '-q', '-b', 'main'));
  await must(git(dir, 'remote', 'add', 'origin', url));
  await must(git(dir, 'commit', '-q', '--allow-empty', '-m', message));
  return dir;
}

export async function commit(dir: string, file: string, content: string, message = `change ${file}`): Promise<string> {
  fs.mkdirSync(path.dirname(path.join(dir, file)), { recursive: true });
  fs.writeFileSync(path.join(dir, file), content);
  await must(git(dir, 'add', file));
  await must(git(dir, 'commit', '-q', '-m', message));
  return (await must(git(dir, 'rev-parse', 'HEAD'))).stdout.trim();
}

/** Waits on a condition, not a sleep. */
export async function waitFor<T>(what: string, probe: () => Promise<T | null | undefined | false>, timeoutMs = 15_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** A fresh OpenSSH key pair made by ssh-keygen: the private key's path and the public line. */
export async function sshKeyPair(type: 'ed25519' | 'ecdsa' | 'rsa' = 'ed25519', bits?: number): Promise<{ path: string; publicKey: string }> {
  const file = path.join(tmpDir('cairn-key-'), `id_${type}`);
  await must(run('ssh-keygen', ['-q', '-t', type, ...(bits ? ['-b', String(bits)] : []), '-N', '', '-C', 'test@cairn', '-f', file]));
  return { path: file, publicKey: fs.readFileSync(`${file}.pub`, 'utf8').trim() };
}

/** The real OpenSSH client, with this key only, no agent, and a throwaway known_hosts. */
export function sshEnv(server: TestServer, keyPath: string): NodeJS.ProcessEnv {
  const knownHosts = path.join(path.dirname(keyPath), 'known_hosts');
  return { GIT_SSH_COMMAND: sshCommand(server, keyPath, knownHosts).join(' ') };
}

export function sshCommand(server: TestServer, keyPath: string, knownHosts = path.join(path.dirname(keyPath), 'known_hosts')): string[] {
  return ['ssh', '-i', keyPath, '-p', String(server.sshPort), '-o', 'IdentitiesOnly=yes', '-o', 'IdentityAgent=none',
    '-o', 'StrictHostKeyChecking=accept-new', '-o', `UserKnownHostsFile=${knownHosts}`, '-o', 'BatchMode=yes',
    '-o', 'LogLevel=ERROR'];
}
