import Ajv, { ErrorObject } from 'ajv';

// Repour's request bodies (its voluptuous schemas, repour/server/endpoint/validation.py), as JSON Schemas.
// Unknown keys are refused, as there. Errors come out in Repour's list shape.

export type ValidationError = { error_message: string; error_type: string; path: (string | number)[] };

const ajv = new Ajv({ allErrors: true, strict: false });
const isUrl = (s: string): boolean => {
  try { const u = new URL(s); return /^[a-z][a-z0-9+.-]*:$/.test(u.protocol) && (u.host !== '' || u.protocol === 'file:'); } catch { return false; }
};
/** Repour accepts a URL or anything giturlparse validates, so scp-style `git@host:org/repo.git` too. */
const isGitUrl = (s: string): boolean => isUrl(s) || /^[\w.-]+@[\w.-]+:[^\s]+$/.test(s);
ajv.addFormat('url', { type: 'string', validate: isUrl });
ajv.addFormat('git-url', { type: 'string', validate: isGitUrl });

const str = { type: 'string', minLength: 1 };
const noBlank = { type: 'string', pattern: '^\\S+$' };
const nullOrStr = { type: ['string', 'null'], minLength: 1 };
const url = { type: 'string', format: 'url' };
const gitUrl = { type: 'string', format: 'git-url' };
const object = (properties: Record<string, unknown>, required: string[] = []) => ({ type: 'object', additionalProperties: false, properties, required });
const callback = object({ url, uri: url, method: { enum: ['PUT', 'POST'] }, headers: { type: ['array', 'null'] },
  attachment: nullOrStr });
const withCallback = (properties: Record<string, unknown>, required: string[]) =>
  object({ ...properties, callback, taskId: nullOrStr }, required);

const SCHEMAS = {
  pull: withCallback({ name: { type: 'string', pattern: '^[a-zA-Z0-9_.][a-zA-Z0-9_.-]*$' }, type: { enum: ['git', 'archive'] }, url: gitUrl,
    ref: nullOrStr, adjust: { type: 'boolean' } }, ['name', 'type', 'url']),
  adjust: withCallback({ ref: str, name: { type: 'string', pattern: '^[a-zA-Z0-9_.][a-zA-Z0-9_.-]*$' },
    internal_url: object({ readwrite: gitUrl, readonly: url }, ['readwrite', 'readonly']),
    adjustParameters: { type: 'object' }, originRepoUrl: { type: ['string', 'null'] }, sync: { type: 'boolean' },
    positiveCallback: callback, negativeCallback: callback, tempBuild: { type: 'boolean' }, tempBuildTimestamp: nullOrStr,
    alignmentPreference: nullOrStr, buildType: str, defaultAlignmentParams: { type: ['string', 'null'] }, brewPullActive: { type: 'boolean' } },
  ['ref']),
  clone: withCallback({ type: { enum: ['git'] }, ref: nullOrStr, originRepoUrl: gitUrl, targetRepoUrl: gitUrl },
    ['type', 'originRepoUrl', 'targetRepoUrl']),
  'internal-scm': withCallback({ project: noBlank, owner_groups: { type: 'array', items: noBlank }, description: { type: 'string' },
    parent_project: { type: 'string' } }, ['project', 'owner_groups']),
  'git-external-to-internal': object({ external_url: str }, ['external_url']),
} as const;
export type Endpoint = keyof typeof SCHEMAS;
export const ENDPOINTS = Object.keys(SCHEMAS) as Endpoint[];

const validators = Object.fromEntries(Object.entries(SCHEMAS).map(([k, s]) => [k, ajv.compile(s)])) as Record<Endpoint, ReturnType<Ajv['compile']>>;

function toRepour(e: ErrorObject): ValidationError {
  const path: (string | number)[] = e.instancePath.split('/').slice(1).map((p) => (/^\d+$/.test(p) ? Number(p) : p.replace(/~1/g, '/').replace(/~0/g, '~')));
  switch (e.keyword) {
    case 'required': return { error_message: 'required key not provided', error_type: 'required key', path: [...path, (e.params as { missingProperty: string }).missingProperty] };
    case 'additionalProperties': return { error_message: 'extra keys not allowed', error_type: 'extra keys', path: [...path, (e.params as { additionalProperty: string }).additionalProperty] };
    case 'format': return { error_message: 'expected a URL', error_type: 'dictionary value', path };
    case 'type': return { error_message: `expected ${(e.params as { type: string | string[] }).type}`, error_type: 'dictionary value', path };
    case 'enum': return { error_message: `value must be one of ${JSON.stringify((e.params as { allowedValues: unknown[] }).allowedValues)}`, error_type: 'dictionary value', path };
    case 'pattern': return { error_message: 'does not match regular expression', error_type: 'dictionary value', path };
    case 'minLength': return { error_message: 'length of value must be at least 1', error_type: 'dictionary value', path };
    default: return { error_message: e.message ?? 'invalid value', error_type: 'dictionary value', path };
  }
}

/** The errors of a parsed body, in Repour's list shape; empty means valid. */
export function validateBody(endpoint: Endpoint, body: unknown, allowedCallbacks: readonly string[] = []): ValidationError[] {
  const validate = validators[endpoint];
  const errors: ValidationError[] = validate(body) ? [] : (validate.errors ?? []).filter((e) => e.keyword !== 'if').map(toRepour);
  if (errors.length > 0 || typeof body !== 'object' || body === null) return errors;
  const b = body as Record<string, unknown>;
  for (const key of ['callback', 'positiveCallback', 'negativeCallback']) {
    const c = b[key] as Record<string, unknown> | undefined;
    if (c && !c.url && !c.uri) errors.push({ error_message: 'a callback needs a url (or uri)', error_type: 'dictionary value', path: [key] });
    // The server sends the result there: with an allow-list, nowhere else (no internal address by way of a callback).
    const target = c ? String(c.url ?? c.uri ?? '') : '';
    if (target && allowedCallbacks.length > 0 && !allowedCallbacks.some((p) => target.startsWith(p))) {
      errors.push({ error_message: 'callback URL is not among the allowed ones (CAIRN_ARCHIVE_ALLOWED_CALLBACKS)', error_type: 'dictionary value', path: [key, 'url'] });
    }
  }
  // Split callbacks come in pairs (or with callback): one alone would be silently never called.
  if (!b.callback && (b.positiveCallback === undefined) !== (b.negativeCallback === undefined)) {
    const lone = b.positiveCallback !== undefined ? 'positiveCallback' : 'negativeCallback';
    errors.push({ error_message: 'positiveCallback and negativeCallback go together (or with callback)', error_type: 'dictionary value', path: [lone] });
  }
  if (endpoint === 'pull' && typeof b.name === 'string' && /\.git$/.test(b.name)) {
    errors.push({ error_message: 'does not match regular expression', error_type: 'dictionary value', path: ['name'] });
  }
  if (endpoint === 'adjust' && b.internal_url === undefined && b.name === undefined) {
    errors.push({ error_message: 'required key not provided', error_type: 'required key', path: ['internal_url'] });
  }
  return errors;
}
