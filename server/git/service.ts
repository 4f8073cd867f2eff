import { ChildProcess, spawn } from 'node:child_process';

export type GitService = 'git-upload-pack' | 'git-receive-pack' | 'git-upload-archive';

/** GIT_PROTOCOL as clients send it (`version=2`, `version=2:object-format=sha1`); anything else is dropped. */
export const safeGitProtocol = (value: string | undefined): string | undefined =>
  value && /^[0-9a-zA-Z=._-]+(:[0-9a-zA-Z=._-]+)*$/.test(value) && value.length < 256 ? value : undefined;

export type ServeGitOptions = {
  service: GitService;
  repoPath: string;
  env: NodeJS.ProcessEnv;
  gitProtocol?: string;
  /** HTTP runs one request-response per process; SSH keeps one conversation. */
  statelessRpc: boolean;
  advertiseRefs?: boolean;
  maxInputBytes?: number;
  /** For receive-pack: the hook it must run, whatever the repository's own config says. */
  hooksDir?: string;
};

/**
 * The one runner of git's network services, for every transport: the caller pipes the client's bytes in
 * and git's out. Per-service settings ride on `-c` so they hold even for a repository wired by an older Cairn.
 */
export function serveGit(o: ServeGitOptions): ChildProcess {
  const config = o.service === 'git-receive-pack'
    // The protection never rests on a file a person could edit: the hook and git's own checks ride on -c.
    ? ['-c', `core.hooksPath=${o.hooksDir ?? ''}`, '-c', 'receive.fsckObjects=true', '-c', 'receive.denyDeletes=true',
      '-c', 'receive.denyNonFastForwards=true', '-c', 'receive.shallowUpdate=false',
      ...(o.maxInputBytes ? ['-c', `receive.maxInputSize=${o.maxInputBytes}`] : [])]
    // Any id may be asked for: nothing is ever pruned, and a partial clone fetches its blobs by id later.
    : ['-c', 'uploadpack.allowFilter=true', '-c', 'uploadpack.allowAnySHA1InWant=true'];
  const args = [...config, o.service.slice(4),
    ...(o.statelessRpc ? ['--stateless-rpc'] : []), ...(o.advertiseRefs ? ['--advertise-refs'] : []), o.repoPath];
  const env = { ...o.env, ...(o.gitProtocol ? { GIT_PROTOCOL: o.gitProtocol } : {}) };
  return spawn('git', args, { env, stdio: ['pipe', 'pipe', 'pipe'] });
}
