import type { Knex } from 'knex';

// Webhooks read the event outbox like any consumer: each has its own cursor, and each (webhook, event) is
// one delivery row, so an event is queued for a webhook exactly once, and sending survives restarts.
export async function up(db: Knex): Promise<void> {
  await db.schema.createTable('webhooks', (t) => {
    t.increments('id');
    t.integer('repo_id').references('repos.id');
    t.integer('tenant_id').references('tenants.id');
    t.text('url').notNullable();
    // Sealed with the keys dir's secrets key (AES-256-GCM): never stored in plain text.
    t.text('secret_sealed').notNullable();
    t.text('events').notNullable();
    t.integer('cursor').notNullable();
    t.boolean('active').notNullable().defaultTo(true);
    t.string('created_at', 32).notNullable();
  });
  await db.schema.createTable('webhook_deliveries', (t) => {
    t.increments('id');
    t.integer('webhook_id').notNullable().references('webhooks.id');
    t.integer('event_id').notNullable().references('events.id');
    // pending → sending (leased) → succeeded | pending again (retry) | failed (attempts used up)
    t.string('state', 16).notNullable();
    t.integer('attempts').notNullable().defaultTo(0);
    t.string('next_attempt_at', 32).notNullable();
    t.string('lease_until', 32);
    t.string('created_at', 32).notNullable();
    t.unique(['webhook_id', 'event_id']);
    t.index(['state', 'next_attempt_at']);
  });
  await db.schema.createTable('webhook_attempts', (t) => {
    t.increments('id');
    t.integer('delivery_id').notNullable().references('webhook_deliveries.id');
    t.string('at', 32).notNullable();
    t.integer('status');
    t.integer('duration_ms').notNullable();
    t.text('response_excerpt');
    t.text('error');
    t.index(['delivery_id']);
  });
}

export async function down(db: Knex): Promise<void> {
  for (const table of ['webhook_attempts', 'webhook_deliveries', 'webhooks']) await db.schema.dropTable(table);
}
