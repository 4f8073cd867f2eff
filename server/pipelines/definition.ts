import { CronExpressionParser } from 'cron-parser';
import { isBranchOrTagRef, isRelease, NAME_PATTERN } from '../names';

// A pipeline definition: its JSON shape (which also validates requests and documents the API), the checks a
// schema cannot express, and the pure rules that read it (which refs trigger, which release, how long builds stay).

export type StageDef = { run: string; timeout_s?: number };
export type Definition = {
  triggers: {
    push?: string[];
    schedule?: { cron: string; ref: string }[];
    repo_created?: boolean;
    manual?: boolean;
    upstream?: { repo: string; release: string; ref?: string }[];
  };
  adjust?: StageDef;
  build: StageDef;
  publish?: { retention?: Record<string, string> };
  /** After each successful publish, a compose of the build (plus `extra` build entries), owned by whoever saved the pipeline. */
  compose?: { extra?: string; seconds_to_live?: number; label?: string };
};

export const MAX_COMMAND_BYTES = 16 * 1024;
const MAX_TIMEOUT_S = 7 * 24 * 3600;
const DEFAULT_TIMEOUT_S = 3600;

const refPattern = { type: 'string', minLength: 6, maxLength: 255 };
const stage = { type: 'object', additionalProperties: false, required: ['run'], properties: {
  run: { type: 'string', minLength: 1, maxLength: MAX_COMMAND_BYTES },
  timeout_s: { type: 'integer', minimum: 1, maximum: MAX_TIMEOUT_S } } };

export const definitionSchema = {
  type: 'object', additionalProperties: false, required: ['triggers', 'build'], properties: {
    triggers: { type: 'object', additionalProperties: false, properties: {
      push: { type: 'array', maxItems: 64, items: refPattern },
      schedule: { type: 'array', maxItems: 16, items: { type: 'object', additionalProperties: false, required: ['cron', 'ref'],
        properties: { cron: { type: 'string', minLength: 1, maxLength: 100 }, ref: refPattern } } },
      repo_created: { type: 'boolean' },
      manual: { type: 'boolean' },
      upstream: { type: 'array', maxItems: 32, items: { type: 'object', additionalProperties: false, required: ['repo', 'release'],
        properties: { repo: { type: 'string', maxLength: 129 }, release: { type: 'string', minLength: 1, maxLength: 255 }, ref: refPattern } } },
    } },
    adjust: stage,
    build: stage,
    compose: { type: 'object', additionalProperties: false, properties: {
      extra: { type: 'string', maxLength: 4096, pattern: '^[A-Za-z0-9 \\-/_.:#+?$~@]*$' },
      seconds_to_live: { type: 'integer', minimum: 1 },
      label: { type: 'string', maxLength: 255, pattern: '^[A-Za-z0-9 \\-/_.:#+?$~@]*$' } } },
    publish: { type: 'object', additionalProperties: false, properties: {
      retention: { type: 'object', maxProperties: 32, additionalProperties: { type: 'string', pattern: '^(forever|[1-9][0-9]{0,5}[dhms])$' } } } },
  },
};


/** A pattern (`*` within one path component, `**` across them) or an exact ref: null when fine, else why not. */
export function refPatternProblem(pattern: string, exact = false): string | null {
  if (!isBranchOrTagRef(pattern)) return 'must be a ref under refs/heads/ or refs/tags/';
  if (exact && pattern.includes('*')) return 'must be one ref, not a pattern';
  if (/\*{3,}/.test(pattern)) return 'has "***": use * within a component or ** across them';
  return null;
}

const TENANT_REPO = new RegExp(`^${NAME_PATTERN.replace(/^\^|\$$/g, '')}/${NAME_PATTERN.replace(/^\^|\$$/g, '')}$`);

/** What a schema cannot say; the message names the field, as a save's 422 does. */
export function definitionProblem(def: Definition): string | null {
  for (const [i, p] of (def.triggers.push ?? []).entries()) {
    const problem = refPatternProblem(p);
    if (problem) return `triggers.push.${i} ${problem}`;
  }
  for (const [i, s] of (def.triggers.schedule ?? []).entries()) {
    try { CronExpressionParser.parse(s.cron, { tz: 'UTC' }); } catch (err) { return `triggers.schedule.${i}.cron is not a valid cron expression: ${(err as Error).message}`; }
    if (![5, 6].includes(s.cron.trim().split(/\s+/).length)) return `triggers.schedule.${i}.cron must have five fields (minute hour day month weekday), or six with seconds first`;
    const problem = refPatternProblem(s.ref, true);
    if (problem) return `triggers.schedule.${i}.ref ${problem}`;
  }
  for (const [i, u] of (def.triggers.upstream ?? []).entries()) {
    if (!TENANT_REPO.test(u.repo)) return `triggers.upstream.${i}.repo must be TENANT/REPO`;
    if (releaseProblem(u.release)) return `triggers.upstream.${i}.release ${releaseProblem(u.release)}`;
    const problem = u.ref === undefined ? null : refPatternProblem(u.ref, true);
    if (problem) return `triggers.upstream.${i}.ref ${problem}`;
  }
  for (const entry of (def.compose?.extra ?? '').split(' ').filter(Boolean)) {
    if (!/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}\/[A-Za-z0-9][A-Za-z0-9._-]{0,63}#[^@\s]+(@\d{8}T\d{6}Z)?$/.test(entry)) {
      return `compose.extra: "${entry}" must be TENANT/REPO#RELEASE[@BUILD-DATE]`;
    }
  }
  for (const key of Object.keys(def.publish?.retention ?? {})) {
    const problem = refPatternProblem(key);
    if (problem) return `publish.retention."${key}" ${problem}`;
  }
  return null;
}

/** A release names a branch (`main`) or a tag (`tags/v1`): the ref it stands for must be a valid one. */
export function releaseProblem(release: string): string | null {
  return isRelease(release) ? null : 'must be a branch name or tags/NAME';
}

/**
 * The artifact tree's name for a ref: the branch name, or `tags/NAME`. A branch whose name itself starts
 * with `tags/` or `heads/` is `heads/NAME`, so no branch can publish into a tag's release.
 */
export function releaseOf(ref: string): string {
  if (ref.startsWith('refs/heads/')) {
    const branch = ref.slice('refs/heads/'.length);
    return /^(tags|heads)\//.test(branch) ? `heads/${branch}` : branch;
  }
  if (ref.startsWith('refs/tags/')) return `tags/${ref.slice('refs/tags/'.length)}`;
  throw new Error(`not a branch or tag: ${ref}`);
}

export const refOfRelease = (release: string): string =>
  release.startsWith('tags/') ? `refs/tags/${release.slice(5)}` : release.startsWith('heads/') ? `refs/heads/${release.slice(6)}` : `refs/heads/${release}`;

/** Glob match of a full ref: `*` stays within one component, `**` crosses them. */
export function refMatches(pattern: string, ref: string): boolean {
  if (!pattern.includes('*')) return pattern === ref;
  const re = pattern.split(/(\*\*|\*)/).map((part) => part === '**' ? '.*' : part === '*' ? '[^/]*'
    : part.replace(/[.+?^${}()|[\]\\]/g, '\\$&')).join('');
  return new RegExp(`^${re}$`).test(ref);
}

export const timeoutMs = (s: StageDef | undefined): number => (s?.timeout_s ?? DEFAULT_TIMEOUT_S) * 1000;

/** How long builds of a release are kept (ms), by the first retention pattern its ref matches; null is forever. */
export function retentionMs(def: Definition | null, release: string): number | null {
  const ref = refOfRelease(release);
  for (const [pattern, keep] of Object.entries(def?.publish?.retention ?? {})) {
    if (!refMatches(pattern, ref)) continue;
    if (keep === 'forever') return null;
    const n = Number(keep.slice(0, -1));
    return n * { d: 86_400_000, h: 3_600_000, m: 60_000, s: 1000 }[keep.slice(-1) as 'd' | 'h' | 'm' | 's'];
  }
  return null;
}

/** The cron firing at or before `at`, for a schedule: the one a ticker owes if it has not fired it yet. */
export function lastDue(cron: string, at: Date): Date {
  const it = CronExpressionParser.parse(cron, { tz: 'UTC', currentDate: new Date(at.getTime() + 1) });
  return it.prev().toDate();
}

/** Which stages a run of this definition goes through, in order. */
export const stagesOf = (def: Definition): string[] => [...(def.adjust ? ['adjust'] : []), 'build', 'publish'];
