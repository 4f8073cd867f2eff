import { NAME_PATTERN } from '../../../names';
import type { JsonSchema } from './route';

// The JSON shapes of the API, used both to validate requests and to write the OpenAPI document.
export const name: JsonSchema = { type: 'string', pattern: NAME_PATTERN, maxLength: 64 };
const time: JsonSchema = { type: 'string', format: 'date-time', example: '2026-11-21T23:00:00Z' };
const oid: JsonSchema = { type: 'string', pattern: '^[0-9a-f]{40}$' };
export const role: JsonSchema = { type: 'string', enum: ['read', 'write', 'admin'] };

const object = (properties: Record<string, JsonSchema>, required: string[] = Object.keys(properties)): JsonSchema =>
  ({ type: 'object', additionalProperties: false, properties, required });

export const error = object({ error: object({ code: { type: 'string' }, message: { type: 'string' } }) });
export const tenant = object({ name, created_at: time });
export const user = object({ name, admin: { type: 'boolean' }, created_at: time });
export const repo = object({ tenant: name, name, public: { type: 'boolean' }, archived: { type: 'boolean' },
  http_url: { type: 'string' }, ssh_url: { type: 'string' }, created_at: time });
export const member = object({ user: name, role, created_at: time });
const permissions: JsonSchema = { type: 'array', items: { type: 'string', enum: ['archive'] }, uniqueItems: true };
export const issuedToken = object({ id: { type: 'string' }, token: { type: 'string' }, created_at: time, expires_at: time, permissions });
export const tokenInfo = object({ id: { type: 'string' }, created_at: time, expires_at: time,
  revoked_at: { type: ['string', 'null'], format: 'date-time' }, permissions });
const refItem = object({ name: { type: 'string' }, commit: oid });
export const refs = object({ branches: { type: 'array', items: refItem }, tags: { type: 'array', items: refItem } });
export const push = object({ id: { type: 'integer' }, seq: { type: 'integer' }, user: { type: 'string' },
  transport: { type: 'string', enum: ['http', 'ssh', 'internal'] }, at: time,
  updates: { type: 'array', items: object({ ref: { type: 'string' }, old: oid, new: oid }) },
  prev_hash: { type: 'string', pattern: '^[0-9a-f]{64}$' }, hash: { type: 'string', pattern: '^[0-9a-f]{64}$' } });

export const sshKey = object({ id: { type: 'integer' }, title: { type: 'string' }, fingerprint: { type: 'string', pattern: '^SHA256:' },
  type: { type: 'string' }, write: { type: 'boolean' }, created_at: time });

export const event: JsonSchema = { type: 'object', required: ['event', 'id', 'seq', 'repo', 'at'], additionalProperties: true,
  properties: { event: { type: 'string' }, id: { type: 'integer' }, seq: { type: 'integer' }, repo: { type: 'string' }, at: time } };

export const list = (items: JsonSchema): JsonSchema => ({ type: 'array', items });

/** A key's title: printable, since it is shown in `ssh … info` and recorded as a deploy key's pushes' user. */
const title: JsonSchema = { type: 'string', minLength: 1, maxLength: 255, pattern: '^[^\\x00-\\x1f\\x7f]+$' };

export const bodies = {
  createTenant: object({ name }),
  createUser: object({ name, admin: { type: 'boolean' } }, ['name']),
  createToken: object({ expires_in: { type: 'integer', minimum: 1 }, permissions }, []),
  createRepo: object({ name, public: { type: 'boolean' } }, ['name']),
  patchRepo: { ...object({ archived: { type: 'boolean' }, public: { type: 'boolean' } }, []), minProperties: 1 },
  putMember: object({ role }),
  addKey: object({ title, key: { type: 'string', minLength: 1, maxLength: 16384 } }),
  addRepoDeployKey: object({ title, key: { type: 'string', minLength: 1, maxLength: 16384 },
    write: { type: 'boolean' } }, ['title', 'key']),
};
