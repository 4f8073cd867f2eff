import fs from 'node:fs';
import type { Context } from 'koa';
import { CairnError } from '../../errors';
import { principalFromHeader, requireRepoRole } from '../../auth';
import { decodeSegments, findArtifact, parseRange, releaseDir } from '../../artifacts';
import type { Entry } from '../../artifacts';
import type { ApiDeps } from './api';

export const ARTIFACTS_PREFIX = '/artifacts/';

const TEXT_FILES = /(^|\/)(CONTEXT|result|SHA256SUMS|latest_build)$|\.(log|txt)$/;

/**
 * `/artifacts/TENANT/REPO/…`: the artifact tree, readable by whoever may clone the repository. Directory
 * listings are HTML, or JSON for `Accept: application/json`; files support Range and carry their sha256.
 */
export async function serveArtifacts(ctx: Context, deps: ApiDeps): Promise<void> {
  const { segments, trailing } = treePath(ctx, ARTIFACTS_PREFIX);
  if (segments.length < 2) throw new CairnError('not_found', 'no such artifact');
  const principal = await principalFromHeader(deps.db, deps.signingKey, ctx.get('authorization') || undefined);
  const { repo } = await requireRepoRole(deps.db, principal, segments[0], segments[1], 'read');
  const root = releaseDir(deps.config.artifactsDir, repo.tenantName, repo.name, '');
  serveTree(ctx, root, segments.slice(2), `/artifacts/${segments.join('/')}`, trailing);
}

/** GET or HEAD of `PREFIX/a/b/…`: the decoded segments, or 404 when one could not name anything in a tree. */
export function treePath(ctx: Context, prefix: string): { segments: string[]; trailing: boolean } {
  if (ctx.method !== 'GET' && ctx.method !== 'HEAD') throw new CairnError('method_not_allowed', `${ctx.method} is not allowed here`, { Allow: 'GET, HEAD' });
  const rawPath = ctx.path.slice(prefix.length);
  const segments = decodeSegments(rawPath.split('/').filter((seg, i, all) => !(seg === '' && i === all.length - 1)));
  if (!segments) throw new CairnError('not_found', 'no such file');
  return { segments, trailing: rawPath === '' || rawPath.endsWith('/') };
}

/**
 * Answers for a path inside a tree on disk (the artifact tree of a repo, a compose): a listing for a
 * directory, the file (with Range, sha256) for a file; nothing that resolves outside `root`.
 */
export function serveTree(ctx: Context, root: string, segments: string[], shownPath: string, trailing: boolean): void {
  const found = findArtifact(root, segments);
  if (!found) throw new CairnError('not_found', 'no such file');
  ctx.set('Cache-Control', 'no-cache');
  if (found.kind === 'dir') {
    if (!trailing) { ctx.status = 301; ctx.redirect(`${ctx.path}/`); return; }
    const wantsJson = (ctx.get('accept') ?? '').includes('application/json');
    const title = `${shownPath.replace(/\/+$/, '')}/`;
    if (wantsJson) { ctx.body = { path: title, entries: found.entries }; return; }
    ctx.type = 'text/html; charset=utf-8';
    ctx.body = listingHtml(title.split('/').map(escapeHtml).join('/'), found.entries);
    return;
  }
  if (trailing) throw new CairnError('not_found', 'no such file');
  ctx.set('Accept-Ranges', 'bytes');
  ctx.set('Last-Modified', found.mtime.toUTCString());
  if (found.sha256) {
    ctx.set('ETag', `"sha256-${found.sha256}"`);
    ctx.set('X-Checksum-Sha256', found.sha256);
    ctx.set('Digest', `sha-256=${Buffer.from(found.sha256, 'hex').toString('base64')}`);
  }
  ctx.type = TEXT_FILES.test(found.path) ? 'text/plain; charset=utf-8' : 'application/octet-stream';
  const range = parseRange(ctx.get('range') || undefined, found.size);
  if (range === 'unsatisfiable') {
    ctx.set('Content-Range', `bytes */${found.size}`);
    throw new CairnError('range_not_satisfiable', `range outside the file's ${found.size} bytes`, { 'Content-Range': `bytes */${found.size}` });
  }
  const { start, end } = range ?? { start: 0, end: found.size - 1 };
  if (range) { ctx.status = 206; ctx.set('Content-Range', `bytes ${start}-${end}/${found.size}`); } else ctx.status = 200;
  const length = found.size === 0 ? 0 : end - start + 1;
  // An empty body for HEAD (koa sends none anyway) keeps the status and the real length.
  ctx.body = ctx.method === 'HEAD' || found.size === 0 ? Buffer.alloc(0) : fs.createReadStream(found.path, { start, end });
  ctx.length = length;
}

const escapeHtml = (s: string): string => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

function listingHtml(title: string, entries: Entry[]): string {
  const rows = entries.map((e) => {
    const href = encodeURIComponent(e.name) + (e.type === 'dir' ? '/' : '');
    return `<tr><td><a href="${href}">${escapeHtml(e.name)}${e.type === 'dir' ? '/' : ''}</a></td><td>${e.type === 'file' ? e.size : '-'}</td>` +
      `<td>${e.modified}</td><td><code>${e.sha256 ?? ''}</code></td></tr>`;
  }).join('\n');
  return `<!doctype html>\n<html><head><meta charset="utf-8"><title>Index of ${title}</title></head><body>\n<h1>Index of ${title}</h1>\n` +
    `<table><tr><th>name</th><th>size</th><th>modified</th><th>sha256</th></tr>\n<tr><td><a href="../">../</a></td><td></td><td></td><td></td></tr>\n${rows}\n</table>\n</body></html>\n`;
}
