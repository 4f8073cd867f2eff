// Composes, ODCS-style: requests checked, inputs pinned, content reused or hard-linked, expired ones swept.
export { parseComposeRequest, reposOf, RequestError, SOURCE_TYPES } from './request';
export type { ComposeRequest, SourceType } from './request';
export { ComposeWorker, composeJson, submitCompose, transition, STATE_CODES } from './worker';
export type { ComposeDeps } from './worker';
