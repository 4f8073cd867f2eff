import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

/**
 * One push at a time per repository, from the pre-receive verdict until receive-pack has exited, so the
 * facts a verdict rests on cannot change under it. A file on the repository volume, not memory: replicas
 * sharing the volume see it too. Its content names the holder, so a restarted server can clear its own.
 */
const LOCK_NAME = 'cairn-push.lock';
const POLL_MS = 15;

export class LockTimeout extends Error {}

type Holder = { host: string; pid: number; instance: string; since: number };

// A container restarts with the same pid every time; the instance id tells this process from its predecessor.
const INSTANCE = crypto.randomBytes(8).toString('hex');
const isMine = (h: Holder): boolean => h.host === os.hostname() && h.pid === process.pid && h.instance === INSTANCE;

const isAlive = (pid: number): boolean => {
  try { process.kill(pid, 0); return true; } catch (err) { return (err as NodeJS.ErrnoException).code === 'EPERM'; }
};

/** A lock left by a process of this host that is gone, or older than any push may take, is stale. */
function isStale(h: Holder | null, maxAgeMs: number): boolean {
  if (!h) return true;
  if (Date.now() - h.since > maxAgeMs) return true;
  return h.host === os.hostname() && (!isAlive(h.pid) || (h.pid === process.pid && h.instance !== INSTANCE));
}

function readHolder(file: string): Holder | null {
  try {
    const h = JSON.parse(fs.readFileSync(file, 'utf8')) as Holder;
    return typeof h.host === 'string' && Number.isInteger(h.pid) && typeof h.instance === 'string' && Number.isFinite(h.since) ? h : null;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { host: '', pid: 0, instance: '', since: Date.now() };
    return null;
  }
}

export async function acquirePushLock(repoDir: string, timeoutMs: number, maxAgeMs = 3600_000): Promise<() => void> {
  const file = path.join(repoDir, LOCK_NAME);
  const deadline = Date.now() + timeoutMs;
  const me = JSON.stringify({ host: os.hostname(), pid: process.pid, instance: INSTANCE, since: Date.now() });
  for (;;) {
    try {
      // link() publishes the lock whole, so nobody ever reads a half-written holder.
      const tmp = `${file}.${INSTANCE}.${Math.random().toString(36).slice(2)}`;
      fs.writeFileSync(tmp, me, { flag: 'wx' });
      try { fs.linkSync(tmp, file); } finally { fs.rmSync(tmp, { force: true }); }
      let released = false;
      return () => { if (!released) { released = true; fs.rmSync(file, { force: true }); } };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    const holder = readHolder(file);
    if (holder && !isMine(holder) && isStale(holder, maxAgeMs)) {
      fs.rmSync(file, { force: true });
      continue;
    }
    if (Date.now() > deadline) throw new LockTimeout(`repository busy: another push holds ${LOCK_NAME}`);
    await new Promise((r) => setTimeout(r, POLL_MS));
  }
}

/** At start-up: a lock this host's previous process left behind is cleared. */
export function clearOwnStaleLock(repoDir: string): boolean {
  const file = path.join(repoDir, LOCK_NAME);
  const holder = readHolder(file);
  if (!fs.existsSync(file) || (holder && (isMine(holder) || !isStale(holder, Infinity)))) return false;
  fs.rmSync(file, { force: true });
  return true;
}

export { isAlive as isProcessAlive };
