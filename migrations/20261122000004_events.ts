import type { Knex } from 'knex';

// The outbox: every event (an accepted push, a repo created, …) is a row written in the same transaction
// as the change it reports, so none is lost or doubled by a crash. `id` orders all events (the cursor of
// GET /events and of the SSE stream); `seq` numbers each repository's events without gaps.
export async function up(db: Knex): Promise<void> {
  await db.schema.createTable('events', (t) => {
    t.increments('id');
    t.integer('repo_id').notNullable().references('repos.id');
    t.integer('seq').notNullable();
    t.string('type', 64).notNullable();
    t.text('data').notNullable();
    t.string('at', 32).notNullable();
    t.unique(['repo_id', 'seq']);
  });
}

export async function down(db: Knex): Promise<void> {
  await db.schema.dropTable('events');
}
