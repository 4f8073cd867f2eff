import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { entryPathProblem, isOriginAllowed, linkTargetProblem, redactUrl } from '../../server/archive';

describe('archive entry paths', () => {
  it('accepts ordinary paths (the positive control)', () => {
    for (const p of ['a', 'a/b/c.txt', './a/b', 'dir/', '.', 'a..b', '..a', '.gitignore', 'x/.github/y']) assert.equal(entryPathProblem(p), null, p);
  });
  it('refuses .., absolute paths, .git, control characters, and paths through a symlink', () => {
    assert.match(entryPathProblem('../etc/passwd')!, /\.\./);
    assert.match(entryPathProblem('a/../../b')!, /\.\./);
    assert.match(entryPathProblem('/etc/passwd')!, /absolute/);
    assert.match(entryPathProblem('C:\\x')!, /absolute/);
    assert.match(entryPathProblem('a/.git/hooks/pre-commit')!, /\.git/);
    assert.match(entryPathProblem('.GIT/config')!, /\.git/);
    assert.match(entryPathProblem('a\nb')!, /control/);
    assert.match(entryPathProblem('link/file', new Set(['link']))!, /symlink/);
    assert.equal(entryPathProblem('link', new Set(['link'])), null);
  });
  it('keeps symlinks inside the tree', () => {
    assert.equal(linkTargetProblem('a/l', 'b'), null);
    assert.equal(linkTargetProblem('a/l', '../b'), null);
    assert.match(linkTargetProblem('a/l', '../../b')!, /out of the tree/);
    assert.match(linkTargetProblem('l', '..')!, /out of the tree/);
    assert.match(linkTargetProblem('l', '/etc/passwd')!, /absolute/);
    assert.match(linkTargetProblem('l', '')!, /empty/);
  });
});

describe('origin allow-list', () => {
  const allowed = ['https://github.com/acme/', 'http://127.0.0.1:8080/'];
  it('allows an origin under a prefix (the positive control)', () => {
    assert.ok(isOriginAllowed('https://github.com/acme/app.git', allowed));
    assert.ok(isOriginAllowed('http://127.0.0.1:8080/x/y.tar.gz', allowed));
  });
  it('denies everything when nothing is allowed', () => {
    assert.ok(!isOriginAllowed('https://github.com/acme/app.git', []));
  });
  it('denies other hosts, look-alike hosts, path escapes, credentials and other schemes', () => {
    for (const url of ['https://github.com/evil/app.git', 'https://github.com.evil.net/acme/x', 'https://github.com/acme/../evil/x',
      'https://github.com/acme/%2e%2e/evil/x', 'http://127.0.0.1:8081/x', 'http://169.254.169.254/latest/', 'file:///etc/passwd',
      'ext::sh -c id', 'https://github.com/acme/x y', 'http://127.0.0.1:8080@10.0.0.1/', 'https://u:p@github.com/acme/x']) {
      assert.ok(!isOriginAllowed(url, allowed), url);
    }
  });
  it('redacts credentials in URLs', () => {
    assert.equal(redactUrl('https://user:secret@host/x'), 'https://***@host/x');
    assert.equal(redactUrl('https://host/x'), 'https://host/x');
  });
});
