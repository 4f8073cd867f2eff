import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { decideCommands, decidePush, refusalLine, RefFacts, ZERO_ID } from '../../server/policy';

const A = 'a'.repeat(40); const B = 'b'.repeat(40); const C = 'c'.repeat(40);
const open = { isArchived: false };
const facts = (entries: [string, RefFacts][]) => new Map(entries);
const codes = (rs: { code: string; ref: string }[]) => rs.map((r) => `${r.code} ${r.ref}`);

describe('protection policy', () => {
  it('allows new branches, new tags, and fast-forwards (the positive controls)', () => {
    const updates = [
      { ref: 'refs/heads/new', oldId: ZERO_ID, newId: A },
      { ref: 'refs/tags/v1', oldId: ZERO_ID, newId: A },
      { ref: 'refs/heads/main', oldId: A, newId: B },
    ];
    assert.deepEqual(decideCommands(open, updates), []);
    assert.deepEqual(decidePush(open, updates, facts([
      ['refs/heads/new', { currentId: ZERO_ID }], ['refs/tags/v1', { currentId: ZERO_ID }],
      ['refs/heads/main', { currentId: A, isFastForward: true }]])), []);
  });

  it('refuses deletes of branches and tags, from the command list alone', () => {
    assert.deepEqual(codes(decideCommands(open, [{ ref: 'refs/heads/main', oldId: A, newId: ZERO_ID }])),
      ['CAIRN_REF_DELETE refs/heads/main']);
    assert.deepEqual(codes(decideCommands(open, [{ ref: 'refs/tags/v1', oldId: A, newId: ZERO_ID }])),
      ['CAIRN_TAG_IMMUTABLE refs/tags/v1']);
  });

  it('refuses any move of an existing tag, even a fast-forward one', () => {
    const u = [{ ref: 'refs/tags/v1', oldId: A, newId: B }];
    assert.deepEqual(codes(decideCommands(open, u)), ['CAIRN_TAG_IMMUTABLE refs/tags/v1']);
    assert.deepEqual(codes(decidePush(open, u, facts([['refs/tags/v1', { currentId: A }]]))), ['CAIRN_TAG_IMMUTABLE refs/tags/v1']);
  });

  it('refuses refs outside refs/heads and refs/tags', () => {
    for (const ref of ['refs/notes/commits', 'refs/for/main', 'refs/pull/1/head', 'refs/heads/', 'HEAD']) {
      assert.deepEqual(codes(decideCommands(open, [{ ref, oldId: ZERO_ID, newId: A }])), [`CAIRN_REF_NAMESPACE ${ref}`]);
    }
  });

  it('refuses a non-fast-forward branch update, and refuses when facts are missing', () => {
    const u = [{ ref: 'refs/heads/main', oldId: A, newId: B }];
    assert.deepEqual(codes(decidePush(open, u, facts([['refs/heads/main', { currentId: A, isFastForward: false }]]))),
      ['CAIRN_NON_FAST_FORWARD refs/heads/main']);
    assert.deepEqual(codes(decidePush(open, u, facts([['refs/heads/main', { currentId: A }]]))),
      ['CAIRN_NON_FAST_FORWARD refs/heads/main']);
    assert.deepEqual(codes(decidePush(open, u, new Map())), ['CAIRN_NON_FAST_FORWARD refs/heads/main']);
  });

  it('judges a stale push by where the ref is now: a racing push loses with a non-fast-forward', () => {
    const u = [{ ref: 'refs/heads/main', oldId: A, newId: B }];
    assert.deepEqual(codes(decidePush(open, u, facts([['refs/heads/main', { currentId: C, isFastForward: false }]]))),
      ['CAIRN_NON_FAST_FORWARD refs/heads/main']);
    assert.deepEqual(codes(decidePush(open, u, facts([['refs/heads/main', { currentId: C, isFastForward: true }]]))),
      ['CAIRN_REF_MOVED refs/heads/main']);
    const create = [{ ref: 'refs/tags/v2', oldId: ZERO_ID, newId: B }];
    assert.deepEqual(codes(decidePush(open, create, facts([['refs/tags/v2', { currentId: C }]]))),
      ['CAIRN_TAG_IMMUTABLE refs/tags/v2']);
  });

  it('refuses an update that changes nothing, and the same ref twice in one push', () => {
    assert.deepEqual(codes(decideCommands(open, [{ ref: 'refs/heads/main', oldId: A, newId: A }])), ['CAIRN_REF_UNCHANGED refs/heads/main']);
    assert.deepEqual(codes(decideCommands(open, [{ ref: 'refs/heads/x', oldId: ZERO_ID, newId: A }, { ref: 'refs/heads/x', oldId: ZERO_ID, newId: B }])),
      ['CAIRN_REF_DUPLICATE refs/heads/x']);
  });

  it('refuses everything in an archived repository', () => {
    assert.deepEqual(codes(decideCommands({ isArchived: true }, [{ ref: 'refs/heads/x', oldId: ZERO_ID, newId: A }])),
      ['CAIRN_REPO_ARCHIVED refs/heads/x']);
  });

  it('reports every refused ref of a push, and only those', () => {
    const refusals = decideCommands(open, [
      { ref: 'refs/heads/ok', oldId: ZERO_ID, newId: A },
      { ref: 'refs/tags/v1', oldId: A, newId: B },
      { ref: 'refs/heads/gone', oldId: A, newId: ZERO_ID },
    ]);
    assert.deepEqual(codes(refusals), ['CAIRN_TAG_IMMUTABLE refs/tags/v1', 'CAIRN_REF_DELETE refs/heads/gone']);
    assert.equal(refusalLine(refusals[0]), 'CAIRN_TAG_IMMUTABLE refs/tags/v1: tags are immutable');
  });
});
