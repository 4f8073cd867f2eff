// Credentials → Principal, and Principal × repo → Role. The visibility rule lives here and nowhere else.
export { loadSigningKey, issueToken, verifyToken, TOKEN_PERMISSIONS } from './tokens';
export type { IssuedToken } from './tokens';
export { ANONYMOUS, atLeast, isAdmin, repoRole, tenantRole, requireRepoRole, requireTenantRole, requireUser,
  requireAdmin, requireTokenPermission, requireSelfOrAdmin, principalName, readableRepos } from './access';
export type { Principal } from './access';
export { principalFromHeader } from './credentials';
export { parsePublicKey, fingerprintOf } from './ssh-keys';
export type { PublicKey } from './ssh-keys';
export { principalFromKey } from './credentials';
export { SecretBox } from './secrets';
