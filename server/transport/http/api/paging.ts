import { CairnError } from '../../../errors';
import type { ApiRequest, ApiResponse } from './route';

const DEFAULT_PAGE = 100;
const MAX_PAGE = 1000;

/** `?limit=N&after=CURSOR` → numbers; the cursor is the last item's id (or sequence) of the previous page. */
export function pageParams(req: ApiRequest): { limit: number; after: number } {
  const one = (v: string | string[] | undefined) => (Array.isArray(v) ? v[v.length - 1] : v);
  const limitText = one(req.query.limit) ?? String(DEFAULT_PAGE);
  const afterText = one(req.query.after) ?? '0';
  if (!/^\d{1,4}$/.test(limitText) || Number(limitText) < 1 || Number(limitText) > MAX_PAGE) {
    throw new CairnError('invalid_field', `limit must be an integer from 1 to ${MAX_PAGE}`);
  }
  if (!/^\d{1,15}$/.test(afterText)) throw new CairnError('invalid_field', 'after must be a cursor from a previous page');
  return { limit: Number(limitText), after: Number(afterText) };
}

/**
 * Answers one page of `items` (fetched with limit + 1, so one extra item says more remain) and, when more
 * remain, a `Link: <…>; rel="next"` header that carries the cursor.
 */
export function pageResponse<T>(req: ApiRequest, items: T[], limit: number, cursorOf: (item: T) => number,
  render: (item: T) => unknown): ApiResponse {
  const page = items.slice(0, limit);
  const headers: Record<string, string> = {};
  if (items.length > limit) {
    const url = new URL(req.ctx.path, req.deps.publicUrl());
    url.searchParams.set('limit', String(limit));
    url.searchParams.set('after', String(cursorOf(page[page.length - 1])));
    headers.Link = `<${url.toString()}>; rel="next"`;
  }
  return { status: 200, body: page.map(render), headers };
}
