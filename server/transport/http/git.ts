import zlib from 'node:zlib';
import { Readable } from 'node:stream';
import getRawBody from 'raw-body';
import type { Context } from 'koa';
import { CairnError } from '../../errors';
import { principalFromHeader, requireRepoRole, requireUser } from '../../auth';
import type { Principal } from '../../auth';
import { decideCommands, refusalLine } from '../../policy';
import { checkPktStream, GitService, parseReceiveRequest, PktLineError, pkt, FLUSH, refusalReport, repoPath,
  safeGitProtocol, serveGit } from '../../git';
import type { ReceiveRequest } from '../../git';
import { metrics } from '../../metrics';
import type { ApiDeps } from './api';

/** `/TENANT/REPO.git/info/refs`, `/TENANT/REPO.git/git-upload-pack`, `/TENANT/REPO.git/git-receive-pack` (`.git` optional). */
const GIT_PATH = /^\/([^/]+)\/([^/]+?)(?:\.git)?\/(info\/refs|git-upload-pack|git-receive-pack)$/;
const MAX_UPLOAD_REQUEST = 64 * 1024 * 1024;
const MAX_COMMAND_LIST = 64 * 1024 * 1024;

export const matchGitPath = (path: string) => {
  const m = GIT_PATH.exec(path);
  return m ? { tenant: decodeURIComponent(m[1]), repo: decodeURIComponent(m[2]), action: m[3] } : null;
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

async function receivePack(ctx: Context, deps: ApiDeps, principal: Principal, repo: import('../../store').Repo, dir: string,
  body: Readable): Promise<void> {
  if (Number(ctx.get('content-length') || 0) > deps.config.maxPushBytes) {
    throw new CairnError('body_too_large', `push larger than ${deps.config.maxPushBytes} bytes`);
  }
  let request: ReceiveRequest;
  try {
    request = await readCommandList(body, parseReceiveRequest, MAX_COMMAND_LIST);
  } catch (err) {
    if (err instanceof PktLineError) throw new CairnError('malformed_request', `malformed push request: ${err.message}`);
    throw new CairnError('malformed_request', `unreadable push request: ${(err as Error).message}`);
  }
  ctx.type = 'application/x-git-receive-pack-result';
  if (request.commands.length === 0) {
    // git's probe: answer as receive-pack does, with nothing, once the body is known to be just that flush.
    if (request.rest.length > 0 || (await remainingBytes(body)) > 0) throw new CairnError('malformed_request', 'push without commands');
    ctx.body = Buffer.alloc(0);
    return;
  }
  // Deletes, tag moves and foreign namespaces are refused from the command list: no pack is unpacked for them.
  const early = decideCommands(repo, request.commands);
  if (early.length > 0) {
    body.resume();
    for (const r of early) metrics.pushesRefused.inc({ code: r.code });
    deps.log.info({ repo: `${repo.tenantName}/${repo.name}`, refusals: early.map(refusalLine) }, 'push refused from its commands');
    ctx.body = refusalReport(request, new Map(early.map((r) => [r.ref, `${r.code} ${r.reason}`])), early.map(refusalLine));
    return;
  }
  const user = principal.kind === 'user' ? principal.user : null;
  const session = deps.hooks.open({ userName: user?.name ?? 'anonymous', userId: user?.id ?? null, transport: 'http' }, repo, dir);
  const child = serveGit({ service: 'git-receive-pack', repoPath: dir, env: { ...deps.gitEnv, ...session.env },
    statelessRpc: true, maxInputBytes: deps.config.maxPushBytes });
  session.setPid(child.pid);
  child.on('close', () => {
    session.finish().catch((err) => deps.log.error({ err }, 'settling a push failed; start-up will settle it'));
  });
  child.stdin!.on('error', () => { /* git stopped reading: its report says why */ });
  child.stdin!.write(request.head);
  child.stdin!.write(request.rest);
  body.pipe(child.stdin!);
  body.on('error', () => child.stdin!.destroy());
  logFailure(deps, child, 'git-receive-pack');
  ctx.body = child.stdout;
}

/**
 * Reads the pkt-lines up to the first flush (a push's command list, which may name 100,000 tags) and hands
 * them, with whatever pack bytes came along, to `parse`. Linear in the size: the buffer grows by doubling
 * and each pkt header is looked at once. The stream is left paused right after the bytes it consumed.
 */
function readCommandList<T>(stream: Readable, parse: (buf: Buffer) => T | null, maxBytes: number): Promise<T> {
  return new Promise((resolve, reject) => {
    let buf = Buffer.alloc(64 * 1024);
    let size = 0;
    let scan = 0;
    const cleanup = () => { stream.off('data', onData); stream.off('end', onEnd); stream.off('error', onError); };
    const finish = (err: unknown, result?: T) => {
      cleanup();
      if (err) { stream.resume(); reject(err); } else { stream.pause(); resolve(result as T); }
    };
    const onData = (chunk: Buffer) => {
      if (size + chunk.length > buf.length) {
        const grown = Buffer.alloc(Math.max(buf.length * 2, size + chunk.length));
        buf.copy(grown, 0, 0, size);
        buf = grown;
      }
      chunk.copy(buf, size);
      size += chunk.length;
      while (size - scan >= 4) {
        const head = buf.toString('latin1', scan, scan + 4);
        const len = /^[0-9a-f]{4}$/.test(head) ? parseInt(head, 16) : -1;
        if (len === 0 || len === -1 || (len > 0 && len < 4)) {
          // A flush, or framing the parser will name: either way it decides now.
          try { const r = parse(buf.subarray(0, size)); return finish(r === null ? new PktLineError('incomplete command list') : null, r ?? undefined); }
          catch (err) { return finish(err); }
        }
        if (size - scan < len) break;
        scan += len;
      }
      if (size > maxBytes) finish(new PktLineError('push command list too long'));
    };
    const onEnd = () => finish(new PktLineError('request ended inside the command list'));
    const onError = (err: Error) => finish(err);
    stream.on('data', onData); stream.on('end', onEnd); stream.on('error', onError);
  });
}

/** Reads a stream to its end, counting (and dropping) what was left in it. */
function remainingBytes(stream: Readable): Promise<number> {
  if (stream.readableEnded) return Promise.resolve(0);
  return new Promise((resolve, reject) => {
    let n = 0;
    stream.on('data', (chunk: Buffer) => { n += chunk.length; });
    stream.once('end', () => resolve(n));
    stream.once('error', reject);
    stream.resume();
  });
}

async function* prefixed(preface: Buffer, rest: Readable): AsyncGenerator<Buffer> {
  if (preface.length > 0) yield preface;
  for await (const chunk of rest) yield chunk as Buffer;
}

function logFailure(deps: ApiDeps, child: import('node:child_process').ChildProcess, service: string): void {
  let stderr = '';
  child.stderr!.on('data', (b: Buffer) => { if (stderr.length < 4096) stderr += b.toString('utf8'); });
  child.on('close', (code) => {
    if (code !== 0) deps.log.warn({ service, code, stderr: stderr.trim().slice(0, 1000) }, 'git service exited with an error');
  });
}
