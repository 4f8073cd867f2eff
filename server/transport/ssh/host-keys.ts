import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { utils } from 'ssh2';
import { fingerprintOf } from '../../auth';

export type HostKey = { type: string; privateKey: string; fingerprint: string };

/**
 * ssh2 1.17's generator writes an ed25519 key its own parser refuses about once in 250 (seen here: 13 of
 * 3,000), which left a server that could not start. Generate until the key reads back.
 */
export function generateParseable(type: 'ed25519' | 'rsa'): { private: string; public: string } {
  for (let attempt = 0; attempt < 20; attempt++) {
    const pair = type === 'rsa' ? utils.generateKeyPairSync('rsa', { bits: 3072 }) : utils.generateKeyPairSync('ed25519');
    const parsed = utils.parseKey(pair.private);
    if (!(parsed instanceof Error) && !Array.isArray(parsed)) return pair;
  }
  throw new Error(`could not generate a readable ${type} host key`);
}

/**
 * The server's identity: an ed25519 and an RSA host key, made in the keys dir on first start and kept,
 * so every client's known_hosts keeps working across restarts and upgrades.
 */
export function loadHostKeys(keysDir: string): HostKey[] {
  fs.mkdirSync(keysDir, { recursive: true, mode: 0o700 });
  fs.chmodSync(keysDir, 0o700);
  return ([['ed25519', 'ssh_host_ed25519_key'], ['rsa', 'ssh_host_rsa_key']] as const).map(([type, file]) => {
    const full = path.join(keysDir, file);
    if (!fs.existsSync(full)) {
      const pair = generateParseable(type);
      // Written aside and linked into place: a process killed mid-write never leaves a key that cannot be read,
      // and a replica that made it first keeps its own (link fails with EEXIST).
      const tmp = `${full}.${crypto.randomBytes(6).toString('hex')}.tmp`;
      fs.writeFileSync(tmp, pair.private, { mode: 0o600, flag: 'wx' });
      try {
        fs.linkSync(tmp, full);
        fs.writeFileSync(`${full}.pub`, `${pair.public}\n`, { mode: 0o644 });
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      } finally {
        fs.rmSync(tmp, { force: true });
      }
    }
    const privateKey = fs.readFileSync(full, 'utf8');
    const parsed = utils.parseKey(privateKey);
    if (parsed instanceof Error || Array.isArray(parsed)) throw new Error(`unreadable SSH host key ${full}`);
    return { type: parsed.type, privateKey, fingerprint: fingerprintOf(parsed.getPublicSSH()) };
  });
}
