// A compose request, checked the way ODCS checks one (api_utils.validate_json_data): known fields only,
// strings from a small alphabet, integers where integers go. Pure: the HTTP face renders the errors.
import { isRelease } from '../names';

export const SOURCE_TYPES = ['git', 'build', 'compose'] as const;
export type SourceType = typeof SOURCE_TYPES[number];
export const FLAGS = ['no_reuse'] as const;

/** ODCS's allowed characters, plus `@` (this API's `RELEASE@BUILD-DATE`). */
const SAFE = /^[A-Za-z0-9 \-/_.:#+?$~@]*$/;

export class RequestError extends Error {}

export type ComposeRequest = { sourceType: SourceType; entries: string[]; flags: string[]; secondsToLive: number | null; label: string | null };

export type GitEntry = { repo: string; ref: string };
export type BuildEntry = { repo: string; release: string; buildDate: string | null };

const TOP = new Set(['source', 'seconds_to_live', 'seconds-to-live', 'flags', 'label']);
const SOURCE = new Set(['type', 'source']);

function safeString(where: string, v: unknown): string {
  if (typeof v !== 'string') throw new RequestError(`${where} must be a string`);
  if (!SAFE.test(v)) throw new RequestError(`${where} may contain only letters, digits and " -/_.:#+?$~@"`);
  return v;
}

function ttl(v: unknown): number | null {
  if (v === undefined || v === null) return null;
  if (typeof v !== 'number' || !Number.isInteger(v)) throw new RequestError('seconds_to_live should be an integer');
  if (v <= 0) throw new RequestError('seconds_to_live should be a positive integer');
  return v;
}

/** The POST body → a request, or a RequestError saying what is wrong with it. */
export function parseComposeRequest(body: unknown): ComposeRequest {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) throw new RequestError('the body must be a JSON object');
  const b = body as Record<string, unknown>;
  for (const k of Object.keys(b)) if (!TOP.has(k)) throw new RequestError(`unknown field "${k}"`);
  const source = b.source;
  if (typeof source !== 'object' || source === null || Array.isArray(source)) throw new RequestError('"source" must be an object with "type" and "source"');
  const s = source as Record<string, unknown>;
  for (const k of Object.keys(s)) if (!SOURCE.has(k)) throw new RequestError(`unknown field "source.${k}"`);
  const type = safeString('source.type', s.type);
  if (!(SOURCE_TYPES as readonly string[]).includes(type)) throw new RequestError(`unknown source type "${type}" (known: ${SOURCE_TYPES.join(', ')})`);
  const text = s.source === undefined ? '' : safeString('source.source', s.source);
  // As ODCS does: split on spaces and drop duplicates (the order of a set is not kept: sorted here, so equal sets read equal).
  const entries = [...new Set(text.split(' ').filter(Boolean))].sort();
  if (entries.length === 0) throw new RequestError('source.source must name at least one input');
  if (entries.length > 256) throw new RequestError('source.source names more than 256 inputs');
  for (const e of entries) parseEntry(type as SourceType, e);
  const flags = b.flags === undefined ? [] : b.flags;
  if (!Array.isArray(flags)) throw new RequestError('flags must be a list');
  for (const f of flags) if (!(FLAGS as readonly string[]).includes(safeString('flags', f))) throw new RequestError(`unknown flag "${f}"`);
  const label = b.label === undefined || b.label === null ? null : safeString('label', b.label);
  if (label !== null && label.length > 255) throw new RequestError('label is longer than 255 characters');
  return { sourceType: type as SourceType, entries, flags: [...new Set(flags as string[])].sort(),
    secondsToLive: ttl(b.seconds_to_live ?? b['seconds-to-live']), label };
}

const REPO = /^([A-Za-z0-9][A-Za-z0-9._-]{0,63})\/([A-Za-z0-9][A-Za-z0-9._-]{0,63})$/;
const BUILD_DATE = /^\d{8}T\d{6}Z$/;

/** One entry of `source.source`, by type: `T/R#REF`, `T/R#RELEASE[@BUILD-DATE]`, or a compose id. */
export function parseEntry(type: 'git', e: string): GitEntry;
export function parseEntry(type: 'build', e: string): BuildEntry;
export function parseEntry(type: SourceType, e: string): GitEntry | BuildEntry | number;
export function parseEntry(type: SourceType, e: string): GitEntry | BuildEntry | number {
  if (type === 'compose') {
    if (!/^[1-9]\d{0,14}$/.test(e)) throw new RequestError(`"${e}" is not a compose id`);
    return Number(e);
  }
  const hash = e.indexOf('#');
  const repo = hash > 0 ? e.slice(0, hash) : '';
  const rest = hash > 0 ? e.slice(hash + 1) : '';
  if (!REPO.test(repo) || rest === '') throw new RequestError(`"${e}" must be ${type === 'git' ? 'TENANT/REPO#REF' : 'TENANT/REPO#RELEASE[@BUILD-DATE]'}`);
  if (type === 'git') return { repo, ref: rest };
  const at = rest.lastIndexOf('@');
  const release = at >= 0 ? rest.slice(0, at) : rest;
  const buildDate = at >= 0 ? rest.slice(at + 1) : null;
  if (!isRelease(release)) throw new RequestError(`"${e}": the release must be a branch name or tags/NAME`);
  if (buildDate !== null && !BUILD_DATE.test(buildDate)) throw new RequestError(`"${e}": the build date must be YYYYMMDDTHHMMSSZ`);
  return { repo, release, buildDate };
}

/** The repositories a request names (none for a compose of composes: those come from the composes). */
export function reposOf(r: ComposeRequest): string[] {
  if (r.sourceType === 'compose') return [];
  return [...new Set(r.entries.map((e) => (parseEntry(r.sourceType, e) as GitEntry | BuildEntry).repo))];
}
