import type { Member, Push, Repo, SshKey, Tenant, TokenRecord, User } from '../../../store';
import { appliedUpdates } from '../../../events';
import type { ApiDeps } from './route';

// The contract's JSON, made once per resource.
export const toApiTenant = (t: Tenant) => ({ name: t.name, created_at: t.createdAt });
export const toApiUser = (u: User) => ({ name: u.name, admin: u.isAdmin, created_at: u.createdAt });
export const toApiMember = (m: Member) => ({ user: m.userName, role: m.role, created_at: m.createdAt });
export const toApiToken = (t: TokenRecord) => ({ id: t.id, created_at: t.createdAt, expires_at: t.expiresAt, revoked_at: t.revokedAt,
  permissions: t.permissions });

export function toApiRepo(deps: ApiDeps, r: Repo) {
  const base = deps.publicUrl();
  // URL.hostname keeps an IPv6 address in its brackets, which is how an ssh:// URL wants it.
  const host = new URL(base).hostname;
  return { tenant: r.tenantName, name: r.name, public: r.isPublic, archived: r.isArchived,
    http_url: `${base}/${r.tenantName}/${r.name}.git`,
    ssh_url: `ssh://git@${host}:${deps.sshPort()}/${r.tenantName}/${r.name}.git`,
    created_at: r.createdAt };
}

export const toApiPush = (p: Push) => ({ id: p.id, seq: p.seq, user: p.userName, transport: p.transport, at: p.at,
  updates: appliedUpdates(p).map((u) => ({ ref: u.ref, old: u.oldId, new: u.newId })),
  prev_hash: p.prevHash, hash: p.hash });
export const toApiKey = (k: SshKey) => ({ id: k.id, title: k.title, fingerprint: k.fingerprint, type: k.type, write: k.write,
  created_at: k.createdAt });
