import fs from 'node:fs';
import path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { Transform, TransformCallback } from 'node:stream';
import { git } from '../git';
import { ArchiveError, CALLER_FAULT, Cancelled } from './errors';
import { isOriginAllowed, redactUrl } from './paths';
import { runProcess } from './process';

export type OriginLimits = { allowedOrigins: readonly string[]; timeoutMs: number; maxBytes: number };

export function requireAllowedOrigin(url: string, allowed: readonly string[]): void {
  if (!isOriginAllowed(url, allowed)) {
    throw new ArchiveError(`the origin ${redactUrl(url)} is not allowed (CAIRN_ARCHIVE_ALLOWED_ORIGINS)`, 'OriginNotAllowed', { exitCode: CALLER_FAULT });
  }
}

/**
 * git talking to an origin: only the network protocols (never file:// or ext::), no redirects (a redirect
 * could lead past the allow-list), no credential prompts, objects checked as they arrive.
 */
const ORIGIN_GIT_CONFIG = ['-c', 'protocol.allow=never', '-c', 'protocol.https.allow=always', '-c', 'protocol.http.allow=always',
  '-c', 'protocol.git.allow=always', '-c', 'protocol.ssh.allow=always', '-c', 'http.followRedirects=false',
  '-c', 'transfer.fsckObjects=true', '-c', 'credential.helper=', '-c', 'core.askPass=', '-c', 'protocol.version=2'];

const looksLikeSha = (ref: string) => /^[0-9a-f]{7,40}$/.test(ref);

/** Sums the sizes under a directory (the few files of a bare repository while a pack arrives). */
function dirBytes(dir: string): number {
  let n = 0;
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) n += dirBytes(p); else if (e.isFile()) n += fs.statSync(p).size;
  }
  return n;
}

/**
 * Runs git against the origin in `repo`, stopped by the task's cancel, the timeout, or the repository
 * growing past `maxBytes` (a huge origin).
 */
async function originGit(env: NodeJS.ProcessEnv, repo: string, args: string[], limits: OriginLimits, signal: AbortSignal) {
  const local = new AbortController();
  let tooBig = false;
  const onAbort = () => local.abort();
  signal.addEventListener('abort', onAbort, { once: true });
  const watch = setInterval(() => {
    try { if (dirBytes(repo) > limits.maxBytes) { tooBig = true; local.abort(); } } catch (err) {
      // Files come and go while git works (tmp packs renamed): the next look counts them.
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
  }, 200);
  try {
    return await runProcess('git', [...ORIGIN_GIT_CONFIG, ...args], { cwd: repo, env, signal: local.signal, timeoutMs: limits.timeoutMs, maxOutput: 64 * 1024 });
  } catch (err) {
    if (err instanceof Cancelled && tooBig && !signal.aborted) {
      throw new ArchiveError(`the origin is larger than ${limits.maxBytes} bytes`, 'PullCommandError', { exitCode: CALLER_FAULT });
    }
    throw err;
  } finally {
    clearInterval(watch);
    signal.removeEventListener('abort', onAbort);
  }
}

/**
 * Fetches `ref` (a branch, tag or commit id; HEAD when absent) of a git origin into a scratch bare
 * repository `into`, and answers the commit. Shallow when git can; a commit id the origin will not
 * serve by itself is found in a full fetch, as Repour falls back to a full clone.
 */
export async function fetchGitRef(env: NodeJS.ProcessEnv, url: string, ref: string | null, into: string, limits: OriginLimits,
  signal: AbortSignal, opts: { shallow: boolean }): Promise<string> {
  requireAllowedOrigin(url, limits.allowedOrigins);
  if (!fs.existsSync(into)) await git(['init', '-q', '--bare', into], { env });
  const want = ref ?? 'HEAD';
  const shown = (args: string[]) => ['git', ...args.map((a) => (a === url ? redactUrl(url) : a))];
  const first = ['fetch', '-q', '--no-tags', ...(opts.shallow ? ['--depth', '1'] : []), '--', url, want];
  let r = await originGit(env, into, first, limits, signal);
  if (r.code === 0) return (await git(['rev-parse', '--verify', 'FETCH_HEAD^{commit}'], { cwd: into, env })).trim();
  if (!looksLikeSha(want)) {
    throw new ArchiveError(`could not fetch ${want} from the origin`, 'PullCommandError', { cmd: shown(first), exitCode: CALLER_FAULT, stderr: r.stderr });
  }
  const all = ['fetch', '-q', '--', url, '+refs/heads/*:refs/remotes/o/heads/*', '+refs/tags/*:refs/remotes/o/tags/*'];
  r = await originGit(env, into, all, limits, signal);
  if (r.code !== 0) throw new ArchiveError('could not fetch from the origin', 'PullCommandError', { cmd: shown(all), exitCode: CALLER_FAULT, stderr: r.stderr });
  const found = await runProcess('git', ['rev-parse', '--verify', '--quiet', `${want}^{commit}`], { cwd: into, env });
  if (found.code !== 0) throw new ArchiveError(`the origin has no commit ${want}`, 'PullCommandError', { cmd: shown(first), exitCode: CALLER_FAULT, stderr: r.stderr });
  return found.stdout.trim();
}

/** Every branch and tag of the origin into `into` (under refs/mirror/), objects checked. */
export async function fetchAllRefs(env: NodeJS.ProcessEnv, url: string, into: string, limits: OriginLimits, signal: AbortSignal): Promise<void> {
  requireAllowedOrigin(url, limits.allowedOrigins);
  if (!fs.existsSync(into)) await git(['init', '-q', '--bare', into], { env });
  const args = ['fetch', '-q', '--no-tags', '--', url, '+refs/heads/*:refs/mirror/heads/*', '+refs/tags/*:refs/mirror/tags/*'];
  const r = await originGit(env, into, args, limits, signal);
  if (r.code !== 0) {
    throw new ArchiveError('could not fetch from the origin', 'PullCommandError',
      { cmd: ['git', ...args.map((a) => (a === url ? redactUrl(url) : a))], exitCode: CALLER_FAULT, stderr: r.stderr });
  }
}

/** The origin's refs among `refs` (full names): one round trip, as `git ls-remote`. */
export async function lsRemote(env: NodeJS.ProcessEnv, url: string, refs: string[], scratchRepo: string, limits: OriginLimits,
  signal: AbortSignal): Promise<Map<string, string>> {
  requireAllowedOrigin(url, limits.allowedOrigins);
  if (!fs.existsSync(scratchRepo)) await git(['init', '-q', '--bare', scratchRepo], { env });
  const args = ['ls-remote', '--', url, ...refs];
  const r = await originGit(env, scratchRepo, args, limits, signal);
  if (r.code !== 0) {
    throw new ArchiveError('could not list the refs of the origin', 'PullCommandError',
      { cmd: ['git', ...args.map((a) => (a === url ? redactUrl(url) : a))], exitCode: CALLER_FAULT, stderr: r.stderr });
  }
  return new Map(r.stdout.split('\n').filter(Boolean).map((l) => { const [id, ref] = l.split('\t'); return [ref, id] as [string, string]; }));
}

/** Copies the objects of `ids` (and their history) from a scratch repository into an archive repository; no ref is written. */
export async function copyObjects(env: NodeJS.ProcessEnv, from: string, to: string, ids: string[]): Promise<void> {
  if (ids.length === 0) return;
  await git(['config', 'uploadpack.allowAnySHA1InWant', 'true'], { env: { ...env, GIT_DIR: from } });
  await git(['-c', 'fetch.fsckObjects=true', 'fetch', '-q', '--no-write-fetch-head', '--no-tags', '--', from, ...ids],
    { env: { ...env, GIT_DIR: to } });
}

class ByteCap extends Transform {
  private seen = 0;
  constructor(private readonly max: number) { super(); }
  override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    this.seen += chunk.length;
    if (this.seen > this.max) { done(new ArchiveError(`the archive is larger than ${this.max} bytes`, 'PullCommandError', { exitCode: CALLER_FAULT })); return; }
    done(null, chunk);
  }
}

/**
 * Downloads an archive origin to `file`. Redirects are followed only to URLs the allow-list also allows;
 * the download stops at `maxBytes`, at the timeout, or on cancel.
 */
export async function downloadArchive(url: string, file: string, limits: OriginLimits, signal: AbortSignal): Promise<void> {
  let at = url;
  const timeout = AbortSignal.timeout(limits.timeoutMs);
  const both = AbortSignal.any([signal, timeout]);
  try {
    for (let hops = 0; ; hops++) {
      requireAllowedOrigin(at, limits.allowedOrigins);
      if (!/^https?:\/\//.test(at)) throw new ArchiveError('an archive origin must be an http(s) URL', 'PullCommandError', { exitCode: CALLER_FAULT });
      const res = await fetch(at, { redirect: 'manual', signal: both });
      if (res.status >= 300 && res.status < 400 && res.headers.get('location') && hops < 5) {
        await res.body?.cancel();
        at = new URL(res.headers.get('location')!, at).href;
        continue;
      }
      if (!res.ok || !res.body) {
        await res.body?.cancel();
        throw new ArchiveError(`could not download the archive: HTTP ${res.status}`, 'PullCommandError', { exitCode: CALLER_FAULT });
      }
      const declared = Number(res.headers.get('content-length') ?? 0);
      if (declared > limits.maxBytes) {
        await res.body.cancel();
        throw new ArchiveError(`the archive is larger than ${limits.maxBytes} bytes`, 'PullCommandError', { exitCode: CALLER_FAULT });
      }
      await pipeline(Readable.fromWeb(res.body as never), new ByteCap(limits.maxBytes), fs.createWriteStream(file));
      return;
    }
  } catch (err) {
    if (err instanceof ArchiveError) throw err;
    if (signal.aborted) throw new Cancelled();
    if (timeout.aborted) throw new ArchiveError(`the archive download took longer than ${limits.timeoutMs} ms`, 'PullCommandError', { exitCode: CALLER_FAULT });
    throw new ArchiveError(`could not download the archive: ${(err as Error).message.slice(0, 200)}`, 'PullCommandError', { exitCode: CALLER_FAULT });
  }
}
