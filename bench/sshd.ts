import { ChildProcess, spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { aptInstall, freePort, waitForPort } from './reference';

/**
 * The SSH reference: OpenSSH's sshd on loopback with git-shell as the forced command (the way gitolite and
 * plain git hosting run), installed with apt when missing. Runs as root, as sshd must to log a user in.
 */
export type SshReference = { port: number; url: (repo: string) => string; sshCommand: string; stop(): void };

export function ensureSshd(): void {
  aptInstall(fs.existsSync('/usr/sbin/sshd') ? [] : ['openssh-server']);
}

export async function startSshd(projectRoot: string, workDir: string, clientKey: { path: string; publicKey: string }): Promise<SshReference> {
  if (process.getuid?.() !== 0) throw new Error('the sshd reference needs root (sshd logs users in)');
  const port = await freePort();
  const dir = path.join(workDir, 'sshd');
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  fs.mkdirSync('/run/sshd', { recursive: true });
  for (const type of ['ed25519', 'rsa']) {
    spawnSync('ssh-keygen', ['-q', '-t', type, '-N', '', '-f', path.join(dir, `host_${type}`)]);
  }
  fs.writeFileSync(path.join(dir, 'authorized_keys'),
    `command="git-shell -c \\"$SSH_ORIGINAL_COMMAND\\"",no-port-forwarding,no-X11-forwarding,no-agent-forwarding,no-pty ${clientKey.publicKey}\n`, { mode: 0o600 });
  const conf = path.join(dir, 'sshd_config');
  fs.writeFileSync(conf, [`Port ${port}`, 'ListenAddress 127.0.0.1', `HostKey ${dir}/host_ed25519`, `HostKey ${dir}/host_rsa`,
    `AuthorizedKeysFile ${dir}/authorized_keys`, 'PermitRootLogin prohibit-password', 'PasswordAuthentication no',
    'KbdInteractiveAuthentication no', 'UsePAM no', 'StrictModes no', 'AcceptEnv GIT_PROTOCOL', `PidFile ${dir}/sshd.pid`,
    'MaxStartups 100:30:200', 'MaxSessions 100', 'UseDNS no', 'GSSAPIAuthentication no', 'LogLevel ERROR'].join('\n') + '\n');
  const sshd: ChildProcess = spawn('/usr/sbin/sshd', ['-D', '-e', '-f', conf], { stdio: 'ignore' });
  await waitForPort(port);
  const knownHosts = path.join(dir, 'known_hosts');
  return {
    port,
    url: (repo) => `ssh://root@127.0.0.1:${port}${projectRoot}/${repo}.git`,
    sshCommand: `ssh -i ${clientKey.path} -p ${port} -o IdentitiesOnly=yes -o IdentityAgent=none -o StrictHostKeyChecking=accept-new -o UserKnownHostsFile=${knownHosts} -o BatchMode=yes -o LogLevel=ERROR -o SendEnv=GIT_PROTOCOL`,
    stop() { sshd.kill('SIGTERM'); },
  };
}
