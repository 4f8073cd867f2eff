// The git engine: every git process Cairn starts is started here, with an argument array and a scrubbed env.
export { baseGitEnv, runGit, git } from './run';
export { repoPath, initRepo, wireRepo, currentRefs, listRefs, gatherFacts, adoptDefaultBranch, packRefs, resolveRef, peelCommit } from './repo';
export type { RefEntry, UpdateFacts } from './repo';
export { serveGit, safeGitProtocol } from './service';
export type { GitService } from './service';
export { parseReceiveRequest, refusalReport } from './receive-request';
export type { ReceiveRequest, PushCommand } from './receive-request';
export { pkt, FLUSH, PktLineError, checkPktStream } from './pktline';
export { acquirePushLock, clearOwnStaleLock, LockTimeout, isProcessAlive } from './lock';
