// History protection: pure decisions over a push's ref updates. Imports nothing; its callers render the result.

export const ZERO_ID = '0'.repeat(40);

export type RefUpdate = { ref: string; oldId: string; newId: string };
/** What git says about a ref right now, gathered under the repo's push lock and the push's quarantine. */
export type RefFacts = { currentId: string; isFastForward?: boolean };

export const REFUSALS = {
  CAIRN_REPO_ARCHIVED: 'repository is archived (read-only)',
  CAIRN_REF_NAMESPACE: 'only branches (refs/heads/) and tags (refs/tags/) can be pushed',
  CAIRN_TAG_IMMUTABLE: 'tags are immutable',
  CAIRN_REF_DELETE: 'refs are never deleted',
  CAIRN_NON_FAST_FORWARD: 'branches only move forward (fetch, merge or rebase, then push)',
  CAIRN_REF_MOVED: 'the ref changed since you fetched (fetch, then push again)',
  CAIRN_REF_UNCHANGED: 'the ref already points there; nothing to push',
  CAIRN_REF_DUPLICATE: 'the same ref appears twice in this push',
} as const;
export type RefusalCode = keyof typeof REFUSALS;
export type Refusal = { code: RefusalCode; ref: string; reason: string };

const refuse = (code: RefusalCode, ref: string): Refusal => ({ code, ref, reason: REFUSALS[code] });

/** The rules that need only the command list: they run before the pack is received. */
function commandRefusal(repo: { isArchived: boolean }, u: RefUpdate): Refusal | null {
  if (repo.isArchived) return refuse('CAIRN_REPO_ARCHIVED', u.ref);
  if (!/^refs\/(heads|tags)\/./.test(u.ref)) return refuse('CAIRN_REF_NAMESPACE', u.ref);
  // Any update of an existing tag, deletion included, is a move: checked before the delete rule for a clearer reason.
  if (u.ref.startsWith('refs/tags/') && u.oldId !== ZERO_ID) return refuse('CAIRN_TAG_IMMUTABLE', u.ref);
  if (u.newId === ZERO_ID) return refuse('CAIRN_REF_DELETE', u.ref);
  // git never sends one; a hand-made push could, and would be recorded (and trigger builds) for nothing.
  if (u.oldId === u.newId) return refuse('CAIRN_REF_UNCHANGED', u.ref);
  return null;
}

/** Every refusal of the command list alone, one per refused ref; empty means "go on and receive the pack". */
export function decideCommands(repo: { isArchived: boolean }, updates: readonly RefUpdate[]): Refusal[] {
  const seen = new Set<string>();
  return updates.map((u) => {
    if (seen.has(u.ref)) return refuse('CAIRN_REF_DUPLICATE', u.ref);
    seen.add(u.ref);
    return commandRefusal(repo, u);
  }).filter((r): r is Refusal => r !== null);
}

/**
 * The whole decision, with facts from the repository. One refusal refuses the whole push (the caller
 * applies nothing); every refused ref is reported so the pusher sees all of them at once.
 * Missing facts mean git could not answer: refuse rather than guess.
 */
export function decidePush(repo: { isArchived: boolean }, updates: readonly RefUpdate[],
  facts: ReadonlyMap<string, RefFacts>): Refusal[] {
  const refusals: Refusal[] = decideCommands(repo, updates);
  const early = new Set(refusals.map((r) => r.ref));
  for (const u of updates) {
    if (early.has(u.ref)) continue;
    const f = facts.get(u.ref);
    if (!f) { refusals.push(refuse(u.ref.startsWith('refs/tags/') ? 'CAIRN_TAG_IMMUTABLE' : 'CAIRN_NON_FAST_FORWARD', u.ref)); continue; }
    if (f.currentId === u.oldId) {
      if (u.oldId !== ZERO_ID && f.isFastForward !== true) refusals.push(refuse('CAIRN_NON_FAST_FORWARD', u.ref));
      continue;
    }
    // The client's view is stale: someone else pushed this ref in the meantime.
    if (u.ref.startsWith('refs/tags/')) refusals.push(refuse('CAIRN_TAG_IMMUTABLE', u.ref));
    else if (f.currentId !== ZERO_ID && f.isFastForward !== true) refusals.push(refuse('CAIRN_NON_FAST_FORWARD', u.ref));
    else refusals.push(refuse('CAIRN_REF_MOVED', u.ref));
  }
  return refusals;
}

/** The one-line form every transport shows: `CAIRN_TAG_IMMUTABLE refs/tags/v1: tags are immutable`. */
export const refusalLine = (r: Refusal): string => `${r.code} ${r.ref}: ${r.reason}`;

