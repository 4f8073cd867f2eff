import path from 'node:path';
import { nameProblem } from '../names';

/** Everything Cairn reads from its environment, validated once; the only code that reads process.env. */
export type Config = Readonly<{
  dataDir: string;
  reposDir: string;
  keysDir: string;
  httpPort: number;
  sshPort: number;
  bind: string;
  /** Base of the URLs the API returns; when unset it follows the bound HTTP port. */
  publicUrl: string | null;
  databaseUrl: string | null;
  /** Where the git hooks every repository runs are installed (this package's hooks/). */
  hooksDir: string;
  maxPushBytes: number;
  logLevel: string;
  /** The first webhook retry waits this long, each next one twice as long (capped at an hour). */
  webhookRetryBaseMs: number;
  /** Pipeline runs executed at once by this process. */
  workers: number;
  /** A run's log stops growing here; the rest is counted, not kept. */
  runLogMaxBytes: number;
  /** How often builds past their retention are removed. */
  retentionIntervalMs: number;
  artifactsDir: string;
  composesDir: string;
  composeDefaultTtl: number;
  composeMaxTtl: number;
  /** Who may create composes of which source types, besides admins: users by name, groups by tenant membership. */
  composeAllowedClients: { users: Record<string, string[]>; groups: Record<string, string[]> };
  /** Composes this process generates at once; the rest wait. */
  composeWorkers: number;
  /** How pipeline commands are confined: bubblewrap when it works (auto), always (bwrap), or not (none). */
  buildSandbox: 'auto' | 'bwrap' | 'none';
  /** The archive (Repour) API: see docs/archive.md. */
  archive: ArchiveConfig;
}>;

export type ArchiveConfig = Readonly<{
  /** The tenant that holds archive repositories (created on first use). */
  tenant: string;
  /** URL prefixes an origin must start with; empty refuses every origin. */
  allowedOrigins: readonly string[];
  /** URL prefixes a callback must start with; empty lets a callback go anywhere, as Repour does. */
  allowedCallbacks: readonly string[];
  /** Build type → shell command run in the checkout by /repour/adjust. */
  adjusters: Readonly<Record<string, string>>;
  callbackRetryBaseMs: number;
  fetchTimeoutMs: number;
  adjustTimeoutMs: number;
  /** Largest origin download, and largest unpacked tree, in bytes. */
  maxBytes: number;
  maxEntries: number;
  /** Callback tasks one process runs at once. */
  workers: number;
}>;

function archiveConfig(env: NodeJS.ProcessEnv): ArchiveConfig {
  let adjusters: Record<string, string> = {};
  try {
    adjusters = JSON.parse(env.CAIRN_ARCHIVE_ADJUSTERS || '{}');
  } catch {
    throw new ConfigError('CAIRN_ARCHIVE_ADJUSTERS must be JSON: {"BUILD_TYPE": "command"}');
  }
  if (typeof adjusters !== 'object' || adjusters === null || Array.isArray(adjusters) ||
    Object.values(adjusters).some((c) => typeof c !== 'string' || c.trim() === '')) {
    throw new ConfigError('CAIRN_ARCHIVE_ADJUSTERS must be a JSON object of build type → non-empty command');
  }
  const allowedOrigins = (env.CAIRN_ARCHIVE_ALLOWED_ORIGINS || '').split(',').map((p) => p.trim()).filter(Boolean);
  for (const p of allowedOrigins) {
    // A bare scheme or host-less prefix would allow everything behind it, internal addresses included.
    if (!/^(https?|git|ssh):\/\/[^/\s]+\//.test(p) || !p.endsWith('/')) throw new ConfigError(`CAIRN_ARCHIVE_ALLOWED_ORIGINS: "${p}" must be a URL prefix with a host and a path, ending at a "/"`);
  }
  const allowedCallbacks = (env.CAIRN_ARCHIVE_ALLOWED_CALLBACKS || '').split(',').map((p) => p.trim()).filter(Boolean);
  for (const p of allowedCallbacks) {
    if (!/^https?:\/\/[^/\s]+\//.test(p) || !p.endsWith('/')) throw new ConfigError(`CAIRN_ARCHIVE_ALLOWED_CALLBACKS: "${p}" must be an http(s) URL prefix with a host and a path, ending at a "/"`);
  }
  const tenant = env.CAIRN_ARCHIVE_TENANT || 'archive';
  const tenantProblem = nameProblem('tenant', tenant);
  if (tenantProblem) throw new ConfigError(`CAIRN_ARCHIVE_TENANT: ${tenantProblem}`);
  return Object.freeze({
    tenant,
    allowedOrigins: Object.freeze(allowedOrigins),
    allowedCallbacks: Object.freeze(allowedCallbacks),
    adjusters: Object.freeze(adjusters),
    callbackRetryBaseMs: positive('CAIRN_ARCHIVE_CALLBACK_RETRY_BASE_MS', env.CAIRN_ARCHIVE_CALLBACK_RETRY_BASE_MS || '2000'),
    fetchTimeoutMs: 1000 * positive('CAIRN_ARCHIVE_FETCH_TIMEOUT_S', env.CAIRN_ARCHIVE_FETCH_TIMEOUT_S || '600'),
    adjustTimeoutMs: 1000 * positive('CAIRN_ARCHIVE_ADJUST_TIMEOUT_S', env.CAIRN_ARCHIVE_ADJUST_TIMEOUT_S || '3600'),
    maxBytes: positive('CAIRN_ARCHIVE_MAX_BYTES', env.CAIRN_ARCHIVE_MAX_BYTES || String(2 * 1024 ** 3)),
    maxEntries: positive('CAIRN_ARCHIVE_MAX_ENTRIES', env.CAIRN_ARCHIVE_MAX_ENTRIES || '200000'),
    workers: positive('CAIRN_ARCHIVE_WORKERS', env.CAIRN_ARCHIVE_WORKERS || '2'),
  });
}

export type ConfigFlags = Partial<Record<'dataDir' | 'httpPort' | 'sshPort' | 'bind' | 'publicUrl' |
  'databaseUrl' | 'keysDir' | 'logLevel', string>>;

export class ConfigError extends Error {}

const installDir = path.resolve(__dirname, '..', '..', '..');

function port(name: string, value: string): number {
  const n = Number(value);
  if (!/^\d+$/.test(value) || n > 65535) throw new ConfigError(`${name} must be a port number 0-65535, got "${value}"`);
  return n;
}

function positive(name: string, value: string): number {
  const n = Number(value);
  if (!Number.isSafeInteger(n) || n <= 0) throw new ConfigError(`${name} must be a positive integer, got "${value}"`);
  return n;
}

function oneOf<T extends string>(name: string, value: string, allowed: readonly T[]): T {
  if (!(allowed as readonly string[]).includes(value)) throw new ConfigError(`${name} must be one of ${allowed.join(', ')}, got "${value}"`);
  return value as T;
}

function allowedClients(text: string): Config['composeAllowedClients'] {
  let parsed: unknown;
  try { parsed = JSON.parse(text); } catch { throw new ConfigError('CAIRN_COMPOSE_ALLOWED_CLIENTS must be JSON: {"users": {NAME: [TYPES]}, "groups": {...}}'); }
  const out = { users: {} as Record<string, string[]>, groups: {} as Record<string, string[]> };
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new ConfigError('CAIRN_COMPOSE_ALLOWED_CLIENTS must be a JSON object');
  for (const [kind, entries] of Object.entries(parsed as Record<string, unknown>)) {
    if (kind !== 'users' && kind !== 'groups') throw new ConfigError(`CAIRN_COMPOSE_ALLOWED_CLIENTS: unknown key "${kind}" (users, groups)`);
    if (typeof entries !== 'object' || entries === null) throw new ConfigError(`CAIRN_COMPOSE_ALLOWED_CLIENTS.${kind} must be an object`);
    for (const [name, types] of Object.entries(entries as Record<string, unknown>)) {
      if (!Array.isArray(types) || !types.every((t) => typeof t === 'string')) throw new ConfigError(`CAIRN_COMPOSE_ALLOWED_CLIENTS.${kind}.${name} must be a list of source types`);
      out[kind][name] = types as string[];
    }
  }
  return out;
}

/** Flags win over the environment, which wins over the contract's defaults. */
export function loadConfig(env: NodeJS.ProcessEnv, flags: ConfigFlags = {}): Config {
  const pick = (flag: keyof ConfigFlags, envName: string, fallback: string): string =>
    flags[flag] ?? (env[envName] || fallback);
  const dataDir = path.resolve(pick('dataDir', 'CAIRN_DATA_DIR', './data'));
  const publicUrl = pick('publicUrl', 'CAIRN_PUBLIC_URL', '') || null;
  if (publicUrl !== null && !/^https?:\/\/[^/\s]+/.test(publicUrl)) {
    throw new ConfigError(`CAIRN_PUBLIC_URL must be an http(s) URL, got "${publicUrl}"`);
  }
  const databaseUrl = pick('databaseUrl', 'DATABASE_URL', '') || null;
  if (databaseUrl !== null && !/^postgres(ql)?:\/\//.test(databaseUrl)) {
    throw new ConfigError('DATABASE_URL must be a postgres:// URL (unset means SQLite under the data dir)');
  }
  const maxPushBytes = Number(env.CAIRN_MAX_PUSH_BYTES || 2 * 1024 ** 3);
  if (!Number.isSafeInteger(maxPushBytes) || maxPushBytes <= 0) throw new ConfigError('CAIRN_MAX_PUSH_BYTES must be a positive integer');
  return Object.freeze({
    dataDir,
    reposDir: path.join(dataDir, 'repos'),
    keysDir: path.resolve(pick('keysDir', 'CAIRN_KEYS_DIR', './keys')),
    httpPort: port('CAIRN_HTTP_PORT', pick('httpPort', 'CAIRN_HTTP_PORT', '8080')),
    sshPort: port('CAIRN_SSH_PORT', pick('sshPort', 'CAIRN_SSH_PORT', '2222')),
    bind: pick('bind', 'CAIRN_BIND', '127.0.0.1'),
    publicUrl: publicUrl?.replace(/\/+$/, '') ?? null,
    databaseUrl,
    hooksDir: path.join(installDir, 'hooks'),
    maxPushBytes,
    logLevel: pick('logLevel', 'CAIRN_LOG_LEVEL', 'info'),
    webhookRetryBaseMs: positive('CAIRN_WEBHOOK_RETRY_BASE_MS', env.CAIRN_WEBHOOK_RETRY_BASE_MS || '2000'),
    workers: positive('CAIRN_WORKERS', env.CAIRN_WORKERS || '2'),
    runLogMaxBytes: positive('CAIRN_RUN_LOG_MAX_BYTES', env.CAIRN_RUN_LOG_MAX_BYTES || String(16 * 1024 * 1024)),
    retentionIntervalMs: positive('CAIRN_RETENTION_INTERVAL_S', env.CAIRN_RETENTION_INTERVAL_S || '3600') * 1000,
    artifactsDir: path.join(dataDir, 'artifacts'),
    composesDir: path.join(dataDir, 'composes'),
    composeDefaultTtl: positive('CAIRN_COMPOSE_DEFAULT_TTL', env.CAIRN_COMPOSE_DEFAULT_TTL || '86400'),
    composeMaxTtl: positive('CAIRN_COMPOSE_MAX_TTL', env.CAIRN_COMPOSE_MAX_TTL || '259200'),
    composeAllowedClients: allowedClients(env.CAIRN_COMPOSE_ALLOWED_CLIENTS || '{}'),
    composeWorkers: positive('CAIRN_COMPOSE_WORKERS', env.CAIRN_COMPOSE_WORKERS || '2'),
    buildSandbox: oneOf('CAIRN_BUILD_SANDBOX', env.CAIRN_BUILD_SANDBOX || 'auto', ['auto', 'bwrap', 'none'] as const),
    archive: archiveConfig(env),
  });
}
