import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { nameKey, nameProblem } from '../../server/names';

describe('names', () => {
  it('accepts the contract alphabet (positive control)', () => {
    for (const n of ['a', 'acme', 'Foo.Bar_baz-1', '9lives', 'x'.repeat(64), 'a..b']) assert.equal(nameProblem('repo', n), null, n);
  });
  it('refuses what could escape a directory, clash, or confuse a URL', () => {
    for (const n of ['', '..', '.hidden', '-flag', '_x', 'a/b', 'a b', 'x'.repeat(65), 'app.git', 'APP.GIT', 'a\0b', 'é', 'a\nb', '%2e%2e']) {
      assert.notEqual(nameProblem('repo', n), null, JSON.stringify(n));
    }
  });
  it('reserves the top-level paths Cairn serves itself, for tenants only', () => {
    assert.match(nameProblem('tenant', 'API') ?? '', /reserved/);
    assert.equal(nameProblem('repo', 'api'), null);
  });
  it('compares without regard to case', () => assert.equal(nameKey('Foo'), nameKey('fOO')));
});
