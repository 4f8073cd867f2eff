import type { Knex } from '../db';
import type { Logger } from '../log';
import * as store from '../store';
import { parseBuildDate, removeBuild } from '../artifacts';
import { Definition, retentionMs } from './definition';

/**
 * Removes builds older than their release's retention (the first `publish.retention` pattern its ref
 * matches; none matching keeps them forever). The build latest_build names is never removed.
 */
export async function enforceRetention(db: Knex, artifactsDir: string, log: Logger, at = Date.now()): Promise<number> {
  const defs = new Map<number, Definition | null>();
  let removed = 0;
  for (const build of await store.liveBuilds(db)) {
    if (!defs.has(build.repoId)) defs.set(build.repoId, ((await store.findPipeline(db, build.repoId))?.definition as Definition) ?? null);
    const keepMs = retentionMs(defs.get(build.repoId) ?? null, build.release);
    if (keepMs === null || parseBuildDate(build.buildDate).getTime() + keepMs > at) continue;
    const repo = await store.findRepoById(db, build.repoId);
    if (!repo || !removeBuild(artifactsDir, repo.tenantName, repo.name, build.release, build.buildDate)) continue;
    await store.markBuildRemoved(db, build.id);
    log.info({ repo: `${repo.tenantName}/${repo.name}`, release: build.release, build_date: build.buildDate }, 'build removed by retention');
    removed++;
  }
  return removed;
}
