import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { git, must, tmpDir } from '../harness';
import { readRefsFromFiles } from '../../server/git/refs-files';

describe('reading refs from the files backend', () => {
  it('agrees with git for loose, packed and missing refs, and steps aside for anything odd', async () => {
    const dir = path.join(tmpDir(), 'r.git');
    await must(git(path.dirname(dir), 'init', '-q', '--bare', dir));
    const work = tmpDir();
    await must(git(work, 'init', '-q', '-b', 'main'));
    await must(git(work, 'commit', '-q', '--allow-empty', '-m', 'one'));
    await must(git(work, 'tag', '-a', 'annotated', '-m', 'a'));
    await must(git(work, 'push', '-q', dir, 'main', 'annotated', 'main:refs/tags/packed', 'main:refs/heads/feature/x'));
    await must(git(dir, 'pack-refs', '--all', '--prune'));
    await must(git(work, 'commit', '-q', '--allow-empty', '-m', 'two'));
    await must(git(work, 'push', '-q', dir, 'main'));
    const refs = ['refs/heads/main', 'refs/tags/annotated', 'refs/tags/packed', 'refs/heads/feature/x', 'refs/heads/missing', 'refs/heads/feature'];
    const byGit = new Map((await must(git(dir, 'for-each-ref', '--format=%(refname) %(objectname)'))).stdout.trim().split('\n')
      .map((l) => l.split(' ') as [string, string]).filter(([r]) => refs.includes(r)));
    assert.deepEqual(readRefsFromFiles(dir, refs), byGit);
    assert.ok(fs.existsSync(path.join(dir, 'refs', 'heads', 'main')), 'main is loose again');
    for (const odd of ['refs/heads/../../config', 'refs/heads//x', 'refs/notes/x', 'HEAD']) assert.equal(readRefsFromFiles(dir, [odd]), undefined, odd);
    fs.writeFileSync(path.join(dir, 'refs', 'heads', 'sym'), 'ref: refs/heads/main\n');
    assert.equal(readRefsFromFiles(dir, ['refs/heads/sym']), undefined);
  });
});
