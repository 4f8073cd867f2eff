import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { definitionProblem, lastDue, refMatches, releaseOf, refOfRelease, retentionMs, stagesOf } from '../../server/pipelines/definition';
import type { Definition } from '../../server/pipelines/definition';
import { decodeSegments, parseRange } from '../../server/artifacts/browse';
import { buildDateOf, parseBuildDate } from '../../server/artifacts/publish';

const def = (over: Partial<Definition> = {}): Definition => ({ triggers: { push: ['refs/heads/main'] }, build: { run: 'make' }, ...over });

describe('pipeline definitions', () => {
  it('matches refs: * within a component, ** across them', () => {
    assert.ok(refMatches('refs/heads/main', 'refs/heads/main'));
    assert.ok(!refMatches('refs/heads/main', 'refs/heads/main2'));
    assert.ok(refMatches('refs/tags/*', 'refs/tags/v1'));
    assert.ok(!refMatches('refs/tags/*', 'refs/tags/release/v1'));
    assert.ok(refMatches('refs/tags/**', 'refs/tags/release/v1'));
    assert.ok(refMatches('refs/heads/release-*', 'refs/heads/release-2.0'));
    assert.ok(!refMatches('refs/heads/r.*', 'refs/heads/rx1'), 'a dot is a dot');
    assert.ok(!refMatches('refs/heads/*', 'refs/tags/x'));
  });

  it('names the field of each problem, and passes good definitions', () => {
    assert.equal(definitionProblem(def()), null);
    assert.equal(definitionProblem(def({ triggers: { schedule: [{ cron: '0 2 * * *', ref: 'refs/heads/main' }], upstream: [{ repo: 'base/lib', release: 'tags/v1' }] } })), null);
    assert.match(definitionProblem(def({ triggers: { push: ['refs/heads/ok', 'heads/x'] } }))!, /^triggers\.push\.1 /);
    assert.match(definitionProblem(def({ triggers: { push: ['refs/heads/a..b'] } }))!, /^triggers\.push\.0 /);
    assert.match(definitionProblem(def({ triggers: { push: ['refs/heads/.hidden'] } }))!, /^triggers\.push\.0 /);
    assert.match(definitionProblem(def({ triggers: { push: ['refs/heads/a b'] } }))!, /^triggers\.push\.0 /);
    assert.match(definitionProblem(def({ triggers: { schedule: [{ cron: '* * *', ref: 'refs/heads/main' }] } }))!, /^triggers\.schedule\.0\.cron /);
    assert.match(definitionProblem(def({ triggers: { schedule: [{ cron: '0 25 * * *', ref: 'refs/heads/main' }] } }))!, /^triggers\.schedule\.0\.cron /);
    assert.match(definitionProblem(def({ triggers: { upstream: [{ repo: 'nope', release: 'main' }] } }))!, /^triggers\.upstream\.0\.repo /);
    assert.match(definitionProblem(def({ triggers: { upstream: [{ repo: 'a/b', release: 'ma*n' }] } }))!, /^triggers\.upstream\.0\.release /);
    assert.match(definitionProblem(def({ publish: { retention: { 'tags/*': '1d' } } }))!, /^publish\.retention\."tags\/\*" /);
  });

  it('maps refs to releases and back', () => {
    assert.equal(releaseOf('refs/heads/main'), 'main');
    assert.equal(releaseOf('refs/heads/feature/x'), 'feature/x');
    assert.equal(releaseOf('refs/tags/v1.0'), 'tags/v1.0');
    assert.equal(refOfRelease('tags/v1.0'), 'refs/tags/v1.0');
    assert.equal(refOfRelease('feature/x'), 'refs/heads/feature/x');
    assert.throws(() => releaseOf('refs/notes/x'));
    // No branch can publish into a tag's release.
    assert.equal(releaseOf('refs/heads/tags/v1'), 'heads/tags/v1');
    assert.equal(refOfRelease('heads/tags/v1'), 'refs/heads/tags/v1');
    assert.equal(releaseOf('refs/heads/heads/x'), 'heads/heads/x');
    assert.equal(refOfRelease(releaseOf('refs/heads/heads/x')), 'refs/heads/heads/x');
  });

  it('keeps builds by the first matching retention pattern, forever when none matches', () => {
    const d = def({ publish: { retention: { 'refs/heads/main': 'forever', 'refs/heads/*': '14d', 'refs/tags/*': '2h' } } });
    assert.equal(retentionMs(d, 'main'), null);
    assert.equal(retentionMs(d, 'dev'), 14 * 86_400_000);
    assert.equal(retentionMs(d, 'tags/v1'), 2 * 3_600_000);
    assert.equal(retentionMs(d, 'feature/x'), null, '* stays within a component');
    assert.equal(retentionMs(null, 'main'), null);
  });

  it('finds the cron firing due at a moment', () => {
    assert.equal(lastDue('0 2 * * *', new Date('2026-11-22T03:00:00Z')).toISOString(), '2026-11-22T02:00:00.000Z');
    assert.equal(lastDue('0 2 * * *', new Date('2026-11-22T02:00:00Z')).toISOString(), '2026-11-22T02:00:00.000Z');
    assert.equal(lastDue('*/15 * * * *', new Date('2026-11-22T03:14:59Z')).toISOString(), '2026-11-22T03:00:00.000Z');
  });

  it('lists stages in order', () => {
    assert.deepEqual(stagesOf(def()), ['build', 'publish']);
    assert.deepEqual(stagesOf(def({ adjust: { run: 'x' } })), ['adjust', 'build', 'publish']);
  });
});

describe('artifact paths and ranges', () => {
  it('refuses segments that could leave the tree', () => {
    assert.deepEqual(decodeSegments(['acme', 'app', 'main', 'x%20y']), ['acme', 'app', 'main', 'x y']);
    for (const bad of [['..'], ['%2e%2e'], ['.'], ['a%2fb'], ['a%5cb'], ['%00'], ['%E0%A4%A'], [''], ['.tmp-20260101T000000Z-abc']]) {
      assert.equal(decodeSegments(['acme', ...bad]), null, bad[0]);
    }
  });

  it('reads one byte range, or says it cannot be met', () => {
    assert.deepEqual(parseRange('bytes=0-9', 100), { start: 0, end: 9 });
    assert.deepEqual(parseRange('bytes=90-', 100), { start: 90, end: 99 });
    assert.deepEqual(parseRange('bytes=-10', 100), { start: 90, end: 99 });
    assert.deepEqual(parseRange('bytes=50-500', 100), { start: 50, end: 99 });
    assert.equal(parseRange('bytes=100-', 100), 'unsatisfiable');
    assert.equal(parseRange('bytes=9-3', 100), 'unsatisfiable');
    assert.equal(parseRange('bytes=-0', 100), 'unsatisfiable');
    assert.equal(parseRange('bytes=0-1,5-6', 100), null, 'several ranges: the whole file');
    assert.equal(parseRange('items=0-1', 100), null);
    assert.equal(parseRange(undefined, 100), null);
  });

  it('writes and reads build dates', () => {
    const d = new Date('2026-11-22T03:04:05.678Z');
    assert.equal(buildDateOf(d), '20261122T030405Z');
    assert.equal(parseBuildDate('20261122T030405Z').toISOString(), '2026-11-22T03:04:05.000Z');
  });
});
