// What happened: the push ledger (and, with the pipeline issue, the outbox that carries events onward).
export { entryHash, recordPendingPush, settlePush, verifyLedger, appliedUpdates, GENESIS_HASH } from './ledger';
