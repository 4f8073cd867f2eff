import type { Knex } from 'knex';

// The archive (Repour) API's durable state. `archive_trees` makes "the tag of this tree" an indexed lookup
// (never a scan of the tags) and, by its unique key, lets the first of two racing requests win.
// `archive_tasks` holds every request's task: its cancel flag, its result, and its callback's retry
// schedule, so a restart or another replica carries on where this process stopped.
export async function up(db: Knex): Promise<void> {
  await db.schema.createTable('archive_trees', (t) => {
    t.increments('id');
    t.integer('repo_id').notNullable().references('repos.id');
    t.string('tree', 40).notNullable();
    t.string('tag', 255).notNullable();
    t.string('commit', 40).notNullable();
    t.string('branch', 400).notNullable();
    t.string('created_at', 32).notNullable();
    t.unique(['repo_id', 'tree']);
  });
  await db.schema.createTable('archive_tasks', (t) => {
    // 48 characters of A-Z2-7, Repour's callback id.
    t.string('id', 48).primary();
    t.string('task_id', 255);
    t.string('endpoint', 32).notNullable();
    t.text('request').notNullable();
    t.integer('user_id').notNullable();
    t.string('user_name', 64).notNullable();
    // queued → running → done | cancelled | abandoned (a synchronous request whose server died)
    t.string('state', 16).notNullable();
    t.boolean('cancel_requested').notNullable().defaultTo(false);
    t.string('lease_owner', 300);
    t.string('lease_until', 32);
    t.integer('result_status');
    t.text('result_body');
    // Where a 200 result goes, and where any other goes (Repour's positiveCallback / negativeCallback;
    // both are the request's `callback` when it has only that).
    t.text('callback_url');
    t.string('callback_method', 8);
    t.text('failure_callback_url');
    t.string('failure_callback_method', 8);
    // none | pending → sending → delivered | pending again (retry) | failed (sends used up)
    t.string('callback_state', 16).notNullable().defaultTo('none');
    t.integer('callback_attempts').notNullable().defaultTo(0);
    t.string('callback_next_at', 32);
    t.string('created_at', 32).notNullable();
    t.string('finished_at', 32);
    t.index(['task_id']);
    t.index(['state']);
    t.index(['callback_state', 'callback_next_at']);
  });
  // An archive token: a permission a token carries besides its user's roles (JSON array; null is none).
  await db.schema.alterTable('tokens', (t) => { t.text('permissions'); });
}

export async function down(db: Knex): Promise<void> {
  await db.schema.alterTable('tokens', (t) => { t.dropColumn('permissions'); });
  await db.schema.dropTable('archive_tasks');
  await db.schema.dropTable('archive_trees');
}
