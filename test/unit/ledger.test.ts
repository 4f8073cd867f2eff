import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { entryHash, GENESIS_HASH, verifyLedger } from '../../server/events';
import type { Push } from '../../server/store';

const Z = '0'.repeat(40); const A = 'a'.repeat(40); const B = 'b'.repeat(40);

function chain(specs: { ref: string; oldId: string; newId: string }[][]): Push[] {
  let prev = GENESIS_HASH;
  return specs.map((updates, i) => {
    const p: Push = { id: i + 10, repoId: 1, state: 'accepted', userName: 'alice', userId: 1, transport: 'http',
      at: '2026-11-22T00:00:00Z', host: 'h', pid: 1, seq: i + 1, prevHash: prev, hash: null, settledAt: null,
      updates: updates.map((u) => ({ ...u, applied: true })) };
    p.hash = entryHash(prev, p);
    prev = p.hash;
    return p;
  });
}

describe('push ledger', () => {
  const pushes = chain([[{ ref: 'refs/heads/main', oldId: Z, newId: A }], [{ ref: 'refs/heads/main', oldId: A, newId: B }]]);
  const disk = new Map([['refs/heads/main', B]]);

  it('verifies an intact chain that ends where the disk is (positive control)', () => {
    assert.deepEqual(verifyLedger(pushes, disk), []);
  });
  it('finds an edited record, a broken link, and a missing record', () => {
    const edited = structuredClone(pushes); edited[0].userName = 'mallory';
    assert.match(verifyLedger(edited, disk).join('\n'), /push 10 \(seq 1\): hash does not match/);
    const relinked = structuredClone(pushes); relinked[1].prevHash = GENESIS_HASH;
    assert.match(verifyLedger(relinked, disk).join('\n'), /prev_hash does not match/);
    assert.match(verifyLedger([pushes[0]], disk).join('\n'), /ledger ends at a+, disk has b+/);
  });
  it('finds refs on disk the ledger never recorded, and refs moved behind its back', () => {
    assert.match(verifyLedger(pushes, new Map([...disk, ['refs/tags/x', A]])).join('\n'), /refs\/tags\/x: on disk .* never recorded/);
    assert.match(verifyLedger(pushes, new Map([['refs/heads/main', A]])).join('\n'), /ledger ends at b+, disk has a+/);
  });
  it('ignores updates that did not land', () => {
    const p = chain([[{ ref: 'refs/heads/main', oldId: Z, newId: A }]]);
    p[0].updates.push({ ref: 'refs/heads/other', oldId: Z, newId: B, applied: false });
    assert.deepEqual(verifyLedger(p, new Map([['refs/heads/main', A]])), []);
  });
});
