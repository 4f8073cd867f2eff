import { spawnSync } from 'node:child_process';
import fs from 'node:fs';

/**
 * Where an admin's command runs. With bubblewrap: in its own pid namespace (it sees no other process, so
 * not the server's environment in /proc), with the host read-only, Cairn's data and keys dirs hidden, and
 * only its run's scratch dirs writable; the checkout's git dir is read-only, so it cannot plant hooks or
 * config for the git Cairn runs after it. Without: as the server's user, trusted like a CI runner's host.
 */
export type SandboxMode = 'auto' | 'bwrap' | 'none';
export type Mounts = { writable: string[]; readOnly: [string, string][]; hidden: string[]; cwd: string };
export type Sandbox = { kind: 'bwrap' | 'none'; argv(command: string, m: Mounts): string[] };

const SHELL = ['/bin/sh', '-c'];

function bwrapWorks(): boolean {
  const r = spawnSync('bwrap', ['--die-with-parent', '--unshare-pid', '--ro-bind', '/', '/', '--proc', '/proc', '--dev', '/dev', '--', '/bin/true'],
    { stdio: 'ignore', timeout: 10_000 });
  return r.status === 0;
}

export function chooseSandbox(mode: SandboxMode): Sandbox {
  if (mode !== 'none' && bwrapWorks()) {
    return {
      kind: 'bwrap',
      argv: (command, m) => ['bwrap', '--die-with-parent', '--unshare-pid', '--unshare-ipc', '--unshare-uts', '--unshare-cgroup-try',
        '--ro-bind', '/', '/', ...m.hidden.filter((d) => fs.existsSync(d)).flatMap((d) => ['--tmpfs', d]),
        ...m.writable.flatMap((d) => ['--bind', d, d]), ...m.readOnly.flatMap(([from, to]) => ['--ro-bind', from, to]),
        '--proc', '/proc', '--dev', '/dev', '--chdir', m.cwd, '--', ...SHELL, command],
    };
  }
  if (mode === 'bwrap') throw new Error('CAIRN_BUILD_SANDBOX=bwrap, but bubblewrap (bwrap) is missing or cannot create namespaces here');
  return { kind: 'none', argv: (command) => [...SHELL, command] };
}
