// The artifact tree: publishing finished builds into it, reading it for HTTP, and cleaning it up.
export { publishBuild, removeBuild, latestOf, releaseDir, buildDateOf, parseBuildDate, sha256File, sha256Stream, BUILD_DATE, LATEST } from './publish';
export { decodeSegments, findArtifact, parseRange } from './browse';
export type { Found, Entry } from './browse';
