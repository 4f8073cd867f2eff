import fs from 'node:fs';
import path from 'node:path';
import type { ArchiveDeps, TaskRun } from './context';
import { ArchiveError, CALLER_FAULT } from './errors';
import { runProcess } from './process';

/**
 * Runs the admin's adjuster for a build type in the checkout `dir`. Caller values reach it as environment
 * variables only, never in the command: `CAIRN_ADJUST_REF`, `CAIRN_BUILD_TYPE`, `CAIRN_ADJUST_PARAMETERS`
 * (JSON). It may write JSON to `$CAIRN_ADJUST_RESULT`, which becomes `adjustResultData`.
 */
export async function runAdjuster(deps: ArchiveDeps, run: TaskRun, dir: string,
  job: { buildType: string; ref: string; parameters: Record<string, unknown> }): Promise<{ resultData: Record<string, unknown> }> {
  const command = Object.prototype.hasOwnProperty.call(deps.config.adjusters, job.buildType) ? deps.config.adjusters[job.buildType] : undefined;
  if (!command) throw new ArchiveError(`no adjuster is configured for build type ${job.buildType}`, 'AdjustCommandError', { exitCode: CALLER_FAULT });
  const home = fs.mkdtempSync(path.join(run.scratch, 'home-'));
  const resultFile = path.join(run.scratch, 'adjust-result.json');
  const env = { PATH: deps.gitEnv.PATH, LANG: 'C', HOME: home, CAIRN_ADJUST_REF: job.ref, CAIRN_BUILD_TYPE: job.buildType,
    CAIRN_ADJUST_PARAMETERS: JSON.stringify(job.parameters), CAIRN_ADJUST_RESULT: resultFile };
  // The checkout is an untrusted origin's: its symlinks may point anywhere; in the sandbox only the task's scratch dir is writable.
  const [file, ...args] = deps.confine(command, [run.scratch], dir);
  const r = await runProcess(file, args, { cwd: dir, env, signal: run.signal, timeoutMs: deps.config.adjustTimeoutMs });
  if (r.code !== 0) {
    throw new ArchiveError(`the adjuster for ${job.buildType} failed`, 'AdjustCommandError', { cmd: ['/bin/sh', '-c', command],
      exitCode: r.code, stderr: r.stderr.slice(-16384) });
  }
  if (!fs.existsSync(resultFile)) return { resultData: {} };
  let data: unknown;
  try { data = JSON.parse(fs.readFileSync(resultFile, 'utf8')); } catch {
    throw new ArchiveError('the adjuster wrote a result that is not JSON', 'AdjustCommandError', { cmd: ['/bin/sh', '-c', command], exitCode: r.code });
  }
  if (typeof data !== 'object' || data === null || Array.isArray(data)) {
    throw new ArchiveError('the adjuster wrote a result that is not a JSON object', 'AdjustCommandError', { cmd: ['/bin/sh', '-c', command], exitCode: r.code });
  }
  return { resultData: data as Record<string, unknown> };
}
