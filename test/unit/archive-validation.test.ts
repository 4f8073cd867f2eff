import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { validateBody } from '../../server/transport/http/repour';
import { ArchiveError, callbackDelayMs, callbackId, errorResult, MAX_CALLBACK_SENDS, sniffArchive } from '../../server/archive';

describe('archive request validation (Repour\'s schemas)', () => {
  it('accepts the bodies Repour accepts (the positive control)', () => {
    assert.deepEqual(validateBody('pull', { name: 'app', type: 'git', url: 'git@github.com:acme/app.git', ref: 'v1', callback: { url: 'http://cb/x' } }), []);
    assert.deepEqual(validateBody('pull', { name: 'app', type: 'archive', url: 'https://x/app.tar.gz', adjust: false }), []);
    assert.deepEqual(validateBody('adjust', { ref: 'main', internal_url: { readwrite: 'ssh://git@h:22/archive/a.git', readonly: 'http://h/archive/a.git' },
      adjustParameters: {}, originRepoUrl: null, sync: false, taskId: 't', buildType: 'MVN', tempBuild: true, brewPullActive: false }), []);
    assert.deepEqual(validateBody('clone', { type: 'git', originRepoUrl: 'https://x/a.git', targetRepoUrl: 'http://h/archive/a.git', ref: null }), []);
    assert.deepEqual(validateBody('internal-scm', { project: 'a/b', owner_groups: ['g'] }), []);
    assert.deepEqual(validateBody('git-external-to-internal', { external_url: 'https://x/a/b.git' }), []);
  });
  it('lists every problem with its path: missing, extra, wrong type, bad URL, bad enum, .git names', () => {
    assert.deepEqual(validateBody('pull', {}).map((e) => e.path[0]).sort(), ['name', 'type', 'url']);
    assert.deepEqual(validateBody('pull', { name: 'a', type: 'svn', url: 'x', extra: 1 }).map((e) => [e.path[0], e.error_message]).sort(),
      [['extra', 'extra keys not allowed'], ['type', 'value must be one of ["git","archive"]'], ['url', 'expected a URL']]);
    assert.deepEqual(validateBody('pull', { name: 'a.git', type: 'git', url: 'http://x/a' }).map((e) => e.path), [['name']]);
    assert.deepEqual(validateBody('adjust', { ref: '', internal_url: { readwrite: 'http://h/a' } }).map((e) => e.path).sort(),
      [['internal_url', 'readonly'], ['ref']]);
    assert.deepEqual(validateBody('adjust', { ref: 'x' }).map((e) => e.path), [['internal_url']]);
    assert.deepEqual(validateBody('internal-scm', { project: 'has space', owner_groups: 'g' }).map((e) => e.path).sort(), [['owner_groups'], ['project']]);
    assert.deepEqual(validateBody('pull', { name: 'a', type: 'git', url: 'http://x/a', callback: {} }).map((e) => e.path), [['callback']]);
    assert.deepEqual(validateBody('adjust', { ref: 'x', name: 'a', positiveCallback: { url: 'http://x/' }, negativeCallback: { url: 'http://x/' } }), []);
    assert.deepEqual(validateBody('adjust', { ref: 'x', name: 'a', positiveCallback: { url: 'http://x/' } }).map((e) => e.path), [['positiveCallback']]);
    assert.ok(validateBody('pull', []).length > 0);
    assert.ok(validateBody('pull', null).length > 0);
  });
});

describe('archive answers', () => {
  it('a callback id is 48 characters of A-Z2-7, fresh each time', () => {
    const ids = new Set(Array.from({ length: 50 }, callbackId));
    assert.equal(ids.size, 50);
    for (const id of ids) assert.match(id, /^[A-Z2-7]{48}$/);
  });
  it('errors take Repour\'s two shapes', () => {
    const described = errorResult(new ArchiveError('could not fetch', 'PullCommandError', { cmd: ['git', 'fetch'], exitCode: 10, stderr: 'no' }));
    assert.equal(described.status, 400);
    assert.deepEqual(Object.keys(described.body as object).sort(), ['cmd', 'desc', 'error_traceback', 'error_type', 'exit_code', 'stderr']);
    const other = errorResult(new TypeError('boom'));
    assert.equal(other.status, 500);
    assert.deepEqual(Object.keys(other.body as object).sort(), ['error_traceback', 'error_type']);
    assert.equal((other.body as { error_type: string }).error_type, 'TypeError');
  });
  it('callbacks are retried after 2, 4, … 256 s: 9 sends', () => {
    assert.deepEqual(Array.from({ length: MAX_CALLBACK_SENDS - 1 }, (_, i) => callbackDelayMs(i + 1, 2000) / 1000), [2, 4, 8, 16, 32, 64, 128, 256]);
  });
  it('archives are told by their first bytes', () => {
    assert.equal(sniffArchive(Buffer.from([0x1f, 0x8b, 8])), 'gzip');
    assert.equal(sniffArchive(Buffer.from('PK\x03\x04', 'latin1')), 'zip');
    const tar = Buffer.alloc(512); tar.write('ustar', 257);
    assert.equal(sniffArchive(tar), 'tar');
    assert.equal(sniffArchive(Buffer.from('<html>')), null);
  });
});

describe('callback allow-list', () => {
  const body = (url: string) => ({ name: 'app', type: 'git', url: 'https://x/app.git', ref: 'v1', callback: { url } });
  it('lets a callback go anywhere without a list, and only to listed prefixes with one', () => {
    assert.deepEqual(validateBody('pull', body('http://127.0.0.1:9/x')), []);
    const allowed = ['https://builds.example.com/hooks/'];
    assert.deepEqual(validateBody('pull', body('https://builds.example.com/hooks/1'), allowed), []);
    for (const url of ['http://127.0.0.1:9/x', 'https://builds.example.com.evil/hooks/1', 'https://builds.example.com/other']) {
      const errors = validateBody('pull', body(url), allowed);
      assert.equal(errors.length, 1, url);
      assert.deepEqual(errors[0].path, ['callback', 'url']);
    }
  });
});
