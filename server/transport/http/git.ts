import zlib from 'node:zlib';
import { PassThrough, Readable } from 'node:stream';
import getRawBody from 'raw-body';
import type { Context } from 'koa';
import { CairnError } from '../../errors';
import { principalFromHeader, requireRepoRole, requireUser } from '../../auth';
import type { Principal } from '../../auth';
import { checkPktStream, GitService, PktLineError, pkt, FLUSH, repoPath, safeGitProtocol, serveGit } from '../../git';
import type { ReceiveRequest } from '../../git';
import type { Repo } from '../../store';
import { feedReceivePack, PushContext, readPushCommands, remainingBytes, screenPush, startReceivePack } from '../push';
import { metrics } from '../../metrics';
import type { ApiDeps } from './api';

/** `/TENANT/REPO.git/info/refs`, `/TENANT/REPO.git/git-upload-pack`, `/TENANT/REPO.git/git-receive-pack` (`.git` optional). */
const GIT_PATH = /^\/([^/]+)\/([^/]+?)(?:\.git)?\/(info\/refs|git-upload-pack|git-receive-pack)$/;
const MAX_UPLOAD_REQUEST = 16 * 1024 * 1024;

export const matchGitPath = (path: string) => {
  const m = GIT_PATH.exec(path);
  if (!m) return null;
  // Names need no escaping; a segment that does not decode cannot name anything.
  const decode = (v: string) => { try { return decodeURIComponent(v); } catch { return '%invalid'; } };
  return { tenant: decode(m[1]), repo: decode(m[2]), action: m[3] };
};

/** Smart HTTP: the transport's framing only; permissions and git come from the same faces SSH uses. */
export async function serveGitHttp(ctx: Context, deps: ApiDeps, m: { tenant: string; repo: string; action: string }): Promise<void> {
  const service = (m.action === 'info/refs' ? ctx.query.service : m.action) as GitService;
  if (service !== 'git-upload-pack' && service !== 'git-receive-pack') {
    throw new CairnError('malformed_request', 'only smart HTTP is served: ?service=git-upload-pack or git-receive-pack');
  }
  if (m.action === 'info/refs' ? ctx.method !== 'GET' : ctx.method !== 'POST') {
    throw new CairnError('method_not_allowed', `${ctx.method} is not allowed here`);
  }
  const principal = await principalFromHeader(deps.db, deps.signingKey, ctx.get('authorization') || undefined);
  // Nobody pushes anonymously: git's first, credential-less request of every push is answered at once.
  if (service === 'git-receive-pack' && principal.kind === 'anonymous') requireUser(principal);
  const { repo } = await requireRepoRole(deps.db, principal, m.tenant, m.repo,
    service === 'git-receive-pack' ? 'write' : 'read');
  const dir = repoPath(deps.config.reposDir, repo.tenantName, repo.name);
  const gitProtocol = safeGitProtocol(ctx.get('git-protocol') || undefined);
  ctx.set('Cache-Control', 'no-cache, max-age=0, must-revalidate');
  metrics.gitServices.inc({ service: m.action === 'info/refs' ? `${service}-advertise` : service, transport: 'http' });

  if (m.action === 'info/refs') {
    const child = serveGit({ service, repoPath: dir, env: deps.gitEnv, gitProtocol, statelessRpc: true, advertiseRefs: true });
    child.stdin!.end();
    logFailure(deps, child, service);
    ctx.type = `application/x-${service}-advertisement`;
    // v0 clients expect the service announcement first; a v2 capability advertisement has none (as http-backend does).
    const preface = gitProtocol?.includes('version=2') ? Buffer.alloc(0) : Buffer.concat([pkt(`# service=${service}\n`), FLUSH]);
    ctx.body = Readable.from(prefixed(preface, child.stdout!));
    return;
  }
  const expected = `application/x-${service}-request`;
  if (ctx.get('content-type') !== expected) throw new CairnError('unsupported_media_type', `Content-Type must be ${expected}`);
  const body = requestBody(ctx);
  if (service === 'git-upload-pack') return uploadPack(ctx, deps, dir, body, gitProtocol);
  return receivePack(ctx, deps, principal, repo, dir, body);
}

function requestBody(ctx: Context): Readable {
  const encoding = (ctx.get('content-encoding') || 'identity').toLowerCase();
  if (encoding === 'identity') return ctx.req;
  if (encoding !== 'gzip' && encoding !== 'x-gzip') throw new CairnError('unsupported_media_type', `Content-Encoding ${encoding} is not supported`);
  const gunzip = zlib.createGunzip();
  ctx.req.on('error', (err) => gunzip.destroy(err));
  return ctx.req.pipe(gunzip);
}

async function uploadPack(ctx: Context, deps: ApiDeps, dir: string, body: Readable, gitProtocol?: string): Promise<void> {
  let request: Buffer;
  try {
    request = await getRawBody(body, { limit: MAX_UPLOAD_REQUEST });
  } catch (err) {
    if ((err as { type?: string }).type === 'entity.too.large') throw new CairnError('body_too_large', 'upload-pack request too large');
    throw new CairnError('malformed_request', `unreadable request body: ${(err as Error).message}`);
  }
  // Bad framing gets a clear 400 here instead of a silent hang-up from git.
  try { checkPktStream(request); } catch (err) {
    if (err instanceof PktLineError) throw new CairnError('malformed_request', `malformed pkt-line request: ${err.message}`);
    throw err;
  }
  const child = serveGit({ service: 'git-upload-pack', repoPath: dir, env: deps.gitEnv, gitProtocol, statelessRpc: true });
  child.stdin!.on('error', () => { /* git stopped reading: its exit status and stderr tell why */ });
  child.stdin!.end(request);
  logFailure(deps, child, 'git-upload-pack');
  ctx.type = 'application/x-git-upload-pack-result';
  ctx.body = child.stdout;
}

async function receivePack(ctx: Context, deps: ApiDeps, principal: Principal, repo: Repo, dir: string, body: Readable): Promise<void> {
  if (Number(ctx.get('content-length') || 0) > deps.config.maxPushBytes) {
    throw new CairnError('body_too_large', `push larger than ${deps.config.maxPushBytes} bytes`);
  }
  let request: ReceiveRequest;
  try {
    request = await readPushCommands(body);
  } catch (err) {
    if (err instanceof PktLineError) throw new CairnError('malformed_request', `malformed push request: ${err.message}`);
    throw new CairnError('malformed_request', `unreadable push request: ${(err as Error).message}`);
  }
  ctx.type = 'application/x-git-receive-pack-result';
  if (request.commands.length === 0) {
    // git's probe before a chunked upload: answer as receive-pack does, with nothing, if that flush was all.
    if (request.rest.length > 0 || (await remainingBytes(body)) > 0) throw new CairnError('malformed_request', 'push without commands');
    ctx.body = Buffer.alloc(0);
    return;
  }
  const push: PushContext = { log: deps.log, hooks: deps.hooks, gitEnv: deps.gitEnv, maxPushBytes: deps.config.maxPushBytes,
    hooksDir: deps.config.hooksDir, principal, repo, repoPath: dir, transport: 'http' };
  const refusal = screenPush(push, request);
  if (refusal) {
    body.resume();
    ctx.body = refusal;
    return;
  }
  const { child, recorded } = startReceivePack(push, true);
  feedReceivePack(child, request, body);
  logFailure(deps, child, 'git-receive-pack');
  // git's answer goes out as it comes; the response ends only once the push is recorded.
  const answer = new PassThrough();
  child.stdout!.pipe(answer, { end: false });
  child.stdout!.on('end', () => { recorded.then(() => answer.end(), () => answer.end()); });
  ctx.body = answer;
}

async function* prefixed(preface: Buffer, rest: Readable): AsyncGenerator<Buffer> {
  if (preface.length > 0) yield preface;
  for await (const chunk of rest) yield chunk as Buffer;
}

function logFailure(deps: ApiDeps, child: import('node:child_process').ChildProcess, service: string): void {
  child.on('error', (err) => deps.log.error({ err, service }, 'could not start git'));
  let stderr = '';
  child.stderr!.on('data', (b: Buffer) => { if (stderr.length < 4096) stderr += b.toString('utf8'); });
  child.on('close', (code) => {
    if (code !== 0) deps.log.warn({ service, code, stderr: stderr.trim().slice(0, 1000) }, 'git service exited with an error');
  });
}
