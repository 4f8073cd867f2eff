import { CairnError } from '../errors';
import { Db } from '../db';
import { nameKey } from '../names';
import * as store from '../store';
import { ANONYMOUS, Principal } from './access';
import { verifyToken } from './tokens';

const badCredentials = () => new CairnError('unauthenticated', 'invalid or expired credentials',
  { 'WWW-Authenticate': 'Basic realm="Cairn", charset="UTF-8"' });

/**
 * An Authorization header → the principal. `Bearer TOKEN`, or Basic with the user name and a token
 * as password (what git sends). No header is anonymous; a bad one is 401, never anonymous.
 */
export async function principalFromHeader(db: Db, key: Buffer, header: string | undefined): Promise<Principal> {
  if (!header) return ANONYMOUS;
  const m = /^(Bearer|Basic)\s+(\S+)\s*$/i.exec(header);
  if (!m) throw badCredentials();
  if (m[1].toLowerCase() === 'bearer') {
    const verified = await verifyToken(db, key, m[2]);
    if (!verified) throw badCredentials();
    return { kind: 'user', user: verified.user, token: verified.token };
  }
  const decoded = Buffer.from(m[2], 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  if (colon < 0) throw badCredentials();
  const verified = await verifyToken(db, key, decoded.slice(colon + 1));
  // The name must be the token's owner: a token does not let anyone sign in as someone else.
  if (!verified || nameKey(verified.user.name) !== nameKey(decoded.slice(0, colon))) throw badCredentials();
  return { kind: 'user', user: verified.user, token: verified.token };
}

/**
 * The principal an SSH public key speaks for, looked up afresh on every use, so a removed key or user
 * opens nothing from that moment. Null for a key nobody registered.
 */
export async function principalFromKey(db: Db, fingerprint: string): Promise<Principal | null> {
  const key = await store.findKeyByFingerprint(db, fingerprint);
  if (!key) return null;
  if (key.owner.kind !== 'user') return { kind: 'deploy_key', key };
  const user = await store.findUserById(db, key.owner.userId);
  return user ? { kind: 'user', user } : null;
}
