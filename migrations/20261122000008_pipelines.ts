import type { Knex } from 'knex';

// Pipelines: a definition per repo, runs queued in the database (so any replica can claim them and a restart
// loses nothing), and the builds they published.
export async function up(db: Knex): Promise<void> {
  await db.schema.createTable('pipelines', (t) => {
    t.integer('repo_id').primary().references('repos.id');
    t.text('definition').notNullable();
    t.string('updated_at', 32).notNullable();
    t.string('updated_by', 64).notNullable();
  });
  // Which pipelines a publish of (repo, release) triggers: an indexed lookup, not a scan of every definition.
  await db.schema.createTable('pipeline_upstreams', (t) => {
    t.integer('repo_id').notNullable().references('repos.id');
    t.integer('upstream_repo_id').notNullable().references('repos.id');
    t.string('release', 255).notNullable();
    t.string('ref', 255);
    t.unique(['upstream_repo_id', 'release', 'repo_id']);
  });
  // One row per cron firing: the unique key makes exactly one replica fire it.
  await db.schema.createTable('schedule_fires', (t) => {
    t.integer('repo_id').notNullable().references('repos.id');
    t.string('schedule', 300).notNullable();
    t.string('due_at', 32).notNullable();
    t.unique(['repo_id', 'schedule', 'due_at']);
  });
  // Where each outbox consumer (the pipeline trigger, …) stopped.
  await db.schema.createTable('consumer_cursors', (t) => {
    t.string('name', 64).primary();
    t.integer('last_event_id').notNullable();
  });
  await db.schema.createTable('runs', (t) => {
    t.increments('id');
    t.integer('repo_id').notNullable().references('repos.id');
    t.string('ref', 255).notNullable();
    t.string('commit', 40).notNullable();
    t.string('release', 255).notNullable();
    t.string('trigger', 16).notNullable();
    // queued → running → succeeded | failed | cancelled; queued → cancelled
    t.string('state', 16).notNullable();
    t.text('reason');
    t.text('stages').notNullable();
    t.text('adjust');
    t.text('upstream');
    t.string('build_date', 16);
    t.integer('attempt').notNullable().defaultTo(1);
    t.boolean('cancel_requested').notNullable().defaultTo(false);
    t.string('lease_owner', 300);
    t.string('lease_until', 32);
    // The process group of the command running now: a restarted server kills what its predecessor left.
    t.integer('process_group');
    t.string('created_at', 32).notNullable();
    t.string('started_at', 32);
    t.string('finished_at', 32);
    t.index(['repo_id', 'id']);
    t.index(['state', 'id']);
  });
  // At most one queued and one running run per (repo, release), whatever the number of replicas.
  await db.raw("CREATE UNIQUE INDEX runs_one_queued ON runs (repo_id, release) WHERE state = 'queued'");
  await db.raw("CREATE UNIQUE INDEX runs_one_running ON runs (repo_id, release) WHERE state = 'running'");
  await db.schema.createTable('builds', (t) => {
    t.increments('id');
    t.integer('run_id').notNullable().references('runs.id');
    t.integer('repo_id').notNullable().references('repos.id');
    t.string('release', 255).notNullable();
    t.string('build_date', 16).notNullable();
    t.string('result', 8).notNullable();
    t.string('created_at', 32).notNullable();
    t.string('removed_at', 32);
    t.unique(['repo_id', 'release', 'build_date']);
  });
}

export async function down(db: Knex): Promise<void> {
  for (const table of ['builds', 'runs', 'consumer_cursors', 'schedule_fires', 'pipeline_upstreams', 'pipelines']) await db.schema.dropTable(table);
}
