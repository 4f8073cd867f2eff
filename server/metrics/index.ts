import client from 'prom-client';

/** One registry; each metric declared once, here. */
export const registry = new client.Registry();
client.collectDefaultMetrics({ register: registry, prefix: 'cairn_' });

export const metrics = {
  httpRequests: new client.Counter({ name: 'cairn_http_requests_total', help: 'HTTP requests by route kind and status',
    labelNames: ['kind', 'status'] as const, registers: [registry] }),
  httpDuration: new client.Histogram({ name: 'cairn_http_request_duration_seconds', help: 'HTTP request duration',
    labelNames: ['kind'] as const, buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10, 60], registers: [registry] }),
  gitServices: new client.Counter({ name: 'cairn_git_service_total', help: 'git services started',
    labelNames: ['service', 'transport'] as const, registers: [registry] }),
  pushesAccepted: new client.Counter({ name: 'cairn_pushes_accepted_total', help: 'pushes recorded in the ledger',
    labelNames: ['transport'] as const, registers: [registry] }),
  pushesRefused: new client.Counter({ name: 'cairn_push_refusals_total', help: 'refused ref updates by refusal code',
    labelNames: ['code'] as const, registers: [registry] }),
  // The archive (Repour) API: request times per endpoint, and errors by kind (validation, 400, 500, callback).
  archiveRequestDuration: new client.Histogram({ name: 'cairn_repour_request_duration_seconds', help: 'archive API request time by endpoint',
    labelNames: ['endpoint'] as const, buckets: [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10, 60, 300], registers: [registry] }),
  archiveTaskDuration: new client.Histogram({ name: 'cairn_repour_task_duration_seconds', help: 'archive task run time by endpoint',
    labelNames: ['endpoint'] as const, buckets: [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10, 60, 300, 1800], registers: [registry] }),
  archiveErrors: new client.Counter({ name: 'cairn_repour_errors_total', help: 'archive API errors: validation, 400, 500, callback',
    labelNames: ['kind'] as const, registers: [registry] }),
};
