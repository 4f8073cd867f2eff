import path from 'node:path';

// Pure rules for what an origin's archive may contain: nothing may land outside the work dir.

/** Why an entry's path is refused, or null. `links` holds the symlinks seen so far: nothing goes through one. */
export function entryPathProblem(raw: string, links: ReadonlySet<string> = new Set()): string | null {
  if (raw === '' || raw === '.' || raw === './') return null;
  // Control characters (a newline above all) would corrupt the one-path-per-line lists git reads.
  if (/[\x00-\x1f\x7f]/.test(raw)) return 'a path with a control character';
  if (raw.startsWith('/') || /^[A-Za-z]:[\\/]/.test(raw)) return 'an absolute path';
  const parts = raw.split('/').filter((p) => p !== '' && p !== '.');
  if (parts.some((p) => p === '..')) return 'a ".." path';
  // git refuses a tree with a .git entry, and a checkout of one could plant hooks or config.
  if (parts.some((p) => p.toLowerCase() === '.git')) return 'a .git path';
  for (let i = 1; i < parts.length; i++) {
    if (links.has(parts.slice(0, i).join('/'))) return 'a path through a symlink';
  }
  return null;
}

/** The entry's path as stored: no leading `./`, no trailing `/`. */
export const cleanEntryPath = (raw: string): string => raw.split('/').filter((p) => p !== '' && p !== '.').join('/');

/** Why a symlink at `at` pointing to `target` is refused: it must stay inside the tree. */
export function linkTargetProblem(at: string, target: string): string | null {
  if (target === '') return 'an empty symlink';
  if (/[\x00-\x1f\x7f]/.test(target)) return 'a symlink with a control character';
  if (target.startsWith('/')) return 'a symlink to an absolute path';
  const resolved = path.posix.normalize(path.posix.join(path.posix.dirname(cleanEntryPath(at)), target));
  if (resolved === '..' || resolved.startsWith('../')) return 'a symlink pointing out of the tree';
  return null;
}

/**
 * Whether an origin URL may be fetched: it must start with one of the allowed prefixes, both as written and
 * as a URL parser reads it (so `allowed/../secret` or `%2e%2e` cannot step out of an allowed path).
 * Deny by default: no prefixes, no origins.
 */
export function isOriginAllowed(url: string, prefixes: readonly string[]): boolean {
  if (/[\s\x00-\x1f\x7f\\]/.test(url)) return false;
  if (!prefixes.some((p) => url.startsWith(p))) return false;
  let parsed: URL;
  try { parsed = new URL(url); } catch { return false; }
  if (parsed.username || parsed.password) return false;
  return prefixes.some((p) => parsed.href.startsWith(p));
}

/** A URL with any user:password taken out, for error messages and logs. */
export const redactUrl = (url: string): string => url.replace(/^([a-z][a-z0-9+.-]*:\/\/)[^/@\s]*@/i, '$1***@');
