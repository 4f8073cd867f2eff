/** Names of tenants, users and repos: one rule, checked before anything touches the disk or the database. */
export const NAME_PATTERN = '^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$';
const NAME_RE = new RegExp(NAME_PATTERN);

/** Top-level URL segments Cairn serves itself; a tenant with one of these names would be unreachable. */
const RESERVED_TENANTS = new Set(['api', 'artifacts', 'composes', 'repour', 'healthz', 'metrics', 'openapi.json']);

/** Returns why `name` is not acceptable, or null when it is. */
export function nameProblem(kind: 'tenant' | 'user' | 'repo', name: string): string | null {
  if (!NAME_RE.test(name)) {
    return `${kind} name must be 1-64 characters of A-Z a-z 0-9 . _ -, starting with a letter or digit`;
  }
  if (/\.git$/i.test(name)) return `${kind} name must not end in .git`;
  if (kind === 'tenant' && RESERVED_TENANTS.has(name.toLowerCase())) return `tenant name "${name}" is reserved`;
  return null;
}

/** Names are unique without regard to case, so two repos never clash on a case-insensitive disk. */
export const nameKey = (name: string): string => name.toLowerCase();

// Ref names as git allows them (no "..", no control characters, no component starting with "."); `*` passes, for patterns.
const REF_CHARS = /^refs\/(heads|tags)\/[^\x00-\x20\x7f~^:?[\\]+$/;

/** A branch or tag ref, or a pattern of them, shaped as git allows it. */
export const isBranchOrTagRef = (p: string): boolean => REF_CHARS.test(p) && !p.includes('..') && !p.includes('//') && !p.endsWith('/')
  && !p.endsWith('.lock') && !p.split('/').some((c) => c.startsWith('.'));

/** A release of the artifact tree: a branch name or `tags/NAME` (so never `.`, `..` or empty, and no pattern). */
export const isRelease = (release: string): boolean => !release.includes('*') && isBranchOrTagRef(`refs/heads/${release}`);
