// What happened: the push ledger, and the outbox of events that consumers (webhooks, pipelines) read.
export { entryHash, recordPendingPush, settlePush, verifyLedger, appliedUpdates, GENESIS_HASH } from './ledger';
export { appendEvent, toEventPayload } from './outbox';
export type { EventType } from './outbox';
export { WebhookWorker, signWebhook, retryDelayMs } from './webhooks';
