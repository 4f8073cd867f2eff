import { ChildProcess } from 'node:child_process';
import { Readable } from 'node:stream';
import type { Principal } from '../../auth';
import { principalName } from '../../auth';
import type { Repo } from '../../store';
import { decideCommands, refusalLine } from '../../policy';
import { parseReceiveRequest, PktLineError, refusalReport, serveGit } from '../../git';
import type { ReceiveRequest } from '../../git';
import { metrics } from '../../metrics';
import type { Logger } from '../../log';
import type { HookServer } from '../hook';

// The intake of a push, shared by every transport: read the command list, refuse from it what needs no
// objects, and otherwise run receive-pack under a push session. Each transport only frames the bytes.

/** Room for a push of 100,000 tags with long names, and no more. */
const MAX_COMMAND_LIST = 32 * 1024 * 1024;

export type PushContext = { log: Logger; hooks: HookServer; gitEnv: NodeJS.ProcessEnv; maxPushBytes: number; hooksDir: string;
  principal: Principal; repo: Repo; repoPath: string; transport: 'http' | 'ssh' };

export const readPushCommands = (input: Readable): Promise<ReceiveRequest> => readCommandList(input, parseReceiveRequest, MAX_COMMAND_LIST);

/**
 * Deletes, tag moves, foreign namespaces and archived repos are refused from the command list: the answer
 * receive-pack would give, made without running it, so no pack is ever unpacked for them. Null: go on.
 */
export function screenPush(c: PushContext, request: ReceiveRequest): Buffer | null {
  const early = decideCommands(c.repo, request.commands);
  if (early.length === 0) return null;
  for (const r of early) metrics.pushesRefused.inc({ code: r.code });
  c.log.info({ repo: `${c.repo.tenantName}/${c.repo.name}`, user: principalName(c.principal), transport: c.transport,
    refusals: early.map(refusalLine) }, 'push refused from its commands');
  return refusalReport(request, new Map(early.map((r) => [r.ref, `${r.code} ${r.reason}`])), early.map(refusalLine));
}

/**
 * receive-pack, bound to a push session that the hook's verdict and the settling after exit belong to.
 * `recorded` resolves once the push is in the ledger (or was void): transports end their answer then, so
 * a client that sees `git push` return can read its push back at once.
 */
export function startReceivePack(c: PushContext, statelessRpc: boolean, gitProtocol?: string): { child: ChildProcess; recorded: Promise<void> } {
  const user = c.principal.kind === 'user' ? c.principal.user : null;
  const session = c.hooks.open({ userName: principalName(c.principal), userId: user?.id ?? null, transport: c.transport }, c.repo, c.repoPath);
  const child = serveGit({ service: 'git-receive-pack', repoPath: c.repoPath, env: { ...c.gitEnv, ...session.env },
    statelessRpc, gitProtocol, maxInputBytes: c.maxPushBytes, hooksDir: c.hooksDir });
  child.on('error', (err) => c.log.error({ err }, 'could not start git receive-pack'));
  session.setPid(child.pid);
  let markRecorded!: () => void;
  const recorded = new Promise<void>((resolve) => { markRecorded = resolve; });
  child.on('close', () => {
    session.finish(markRecorded).catch((err) => c.log.error({ err }, 'settling a push failed; the next verdict will settle it'));
  });
  child.stdin!.on('error', () => { /* git stopped reading: its report says why */ });
  return { child, recorded };
}

/** Hands git the (re-encoded, atomic) command list, the pack bytes already read, and the rest of the input. */
export function feedReceivePack(child: ChildProcess, request: ReceiveRequest, input: Readable): void {
  child.stdin!.write(request.head);
  child.stdin!.write(request.rest);
  input.on('error', () => child.stdin!.destroy());
  input.pipe(child.stdin!);
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
export function remainingBytes(stream: Readable): Promise<number> {
  if (stream.readableEnded) return Promise.resolve(0);
  return new Promise((resolve, reject) => {
    let n = 0;
    stream.on('data', (chunk: Buffer) => { n += chunk.length; });
    stream.once('end', () => resolve(n));
    stream.once('error', reject);
    stream.resume();
  });
}

