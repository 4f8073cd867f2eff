import type { Knex } from 'knex';

// Composes (ODCS-style): temporary, pinned sets of sources and builds. The row outlives its files: a
// removed compose can be made again from its pins.
export async function up(db: Knex): Promise<void> {
  await db.schema.createTable('composes', (t) => {
    t.increments('id');
    t.string('owner', 64).notNullable();
    t.string('source_type', 16).notNullable();
    t.text('source').notNullable();
    // wait → generating → done | failed → removed
    t.string('state', 16).notNullable();
    t.text('state_reason');
    t.text('flags').notNullable();
    t.string('label', 255);
    t.integer('seconds_to_live').notNullable();
    // The inputs as resolved when generating began: [{type, repo, ref, commit, tree} | {type, repo, release, build_date}].
    t.text('pins');
    t.string('pins_key', 64);
    t.integer('reused_id').references('composes.id');
    t.string('removed_by', 64);
    t.string('time_submitted', 32).notNullable();
    t.string('time_started', 32);
    t.string('time_done', 32);
    t.string('time_removed', 32);
    t.string('time_to_expire', 32).notNullable();
    t.string('lease_owner', 300);
    t.string('lease_until', 32);
    t.index(['state', 'id']);
    t.index(['pins_key', 'state']);
    t.index(['time_to_expire']);
    t.index(['reused_id']);
  });
  // Which repositories a compose draws on: who may see it, and where its events go.
  await db.schema.createTable('compose_repos', (t) => {
    t.integer('compose_id').notNullable().references('composes.id');
    t.integer('repo_id').notNullable().references('repos.id');
    t.primary(['compose_id', 'repo_id']);
  });
}

export async function down(db: Knex): Promise<void> {
  await db.schema.dropTable('compose_repos');
  await db.schema.dropTable('composes');
}
