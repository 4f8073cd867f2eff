import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { utils } from 'ssh2';
import { parseCommand } from '../../server/transport/ssh';
import { generateParseable } from '../../server/transport/ssh/host-keys';

describe('SSH exec commands', () => {
  it('takes what git sends, in the ssh:// and scp forms (positive control)', () => {
    for (const [command, service] of [["git-upload-pack '/acme/app.git'", 'git-upload-pack'], ["git-receive-pack 'acme/app.git'", 'git-receive-pack'],
      ["git upload-pack 'acme/app'", 'git-upload-pack'], ["git-upload-archive '/acme/app.git'", 'git-upload-archive'], ['git-upload-pack acme/app.git', 'git-upload-pack']]) {
      assert.deepEqual(parseCommand(command), { kind: 'git', service, tenant: 'acme', repo: 'app' }, command);
    }
    assert.deepEqual(parseCommand(''), { kind: 'info' });
    assert.deepEqual(parseCommand('info'), { kind: 'info' });
  });
  it('refuses everything else, including quoting tricks and paths outside the repos root', () => {
    for (const command of ["git-upload-pack 'acme/app.git'; rm -rf /", "git-upload-pack '../../etc/passwd'", "git-upload-pack '/etc/passwd/x/y'",
      "git-upload-pack 'acme/../app.git'", "git-upload-pack 'acme/app.git", "git-upload-pack acme/app.git'", 'git-upload-pack $(id)/x.git',
      "git-upload-pack 'a/b/c.git'", "git-upload-pack '.x/app.git'", 'ls', 'git-shell', "git-upload-pack 'acme/app.git'\nls",
      "git-upload-pack 'api/app.git'", "git-upload-pack 'acme/-x.git'"]) {
      assert.equal(parseCommand(command).kind, 'refused', JSON.stringify(command));
    }
  });
  it('reads an absolute path as TENANT/REPO under the repos root, never as a path on the disk', () => {
    assert.deepEqual(parseCommand("git-upload-pack '/etc/passwd'"), { kind: 'git', service: 'git-upload-pack', tenant: 'etc', repo: 'passwd' });
  });
});

describe('SSH host keys', () => {
  it('are always readable once made (ssh2 sometimes writes an ed25519 key it cannot read back)', () => {
    // About 1 in 250 of ssh2's raw ed25519 keys fail to parse; 1,500 draws find one almost surely.
    for (let i = 0; i < 1500; i++) {
      const parsed = utils.parseKey(generateParseable('ed25519').private);
      assert.ok(!(parsed instanceof Error) && !Array.isArray(parsed), `key ${i} is readable`);
    }
  });
});
