import type { Knex } from 'knex';

// The hosting core: who (users, tokens), where (tenants, repos), who may (grants), what happened (pushes).
// Names carry a lower-cased name_key with a unique index: case-insensitive names on both engines.
export async function up(db: Knex): Promise<void> {
  await db.schema.createTable('users', (t) => {
    t.increments('id');
    t.string('name', 64).notNullable();
    t.string('name_key', 64).notNullable().unique();
    t.boolean('is_admin').notNullable().defaultTo(false);
    t.string('created_at', 32).notNullable();
  });
  await db.schema.createTable('tokens', (t) => {
    // The token itself is a signed JWT and never stored; its id (the JWT's jti) is what revocation flips.
    t.string('id', 32).primary();
    t.integer('user_id').notNullable().references('users.id');
    t.string('created_at', 32).notNullable();
    t.string('expires_at', 32).notNullable();
    t.string('revoked_at', 32);
    t.index(['user_id']);
  });
  await db.schema.createTable('tenants', (t) => {
    t.increments('id');
    t.string('name', 64).notNullable();
    t.string('name_key', 64).notNullable().unique();
    t.string('created_at', 32).notNullable();
  });
  await db.schema.createTable('repos', (t) => {
    t.increments('id');
    t.integer('tenant_id').notNullable().references('tenants.id');
    t.string('name', 64).notNullable();
    t.string('name_key', 64).notNullable();
    t.boolean('public').notNullable().defaultTo(false);
    t.boolean('archived').notNullable().defaultTo(false);
    t.string('created_at', 32).notNullable();
    t.unique(['tenant_id', 'name_key']);
  });
  for (const [table, scope] of [['tenant_members', 'tenant_id'], ['repo_members', 'repo_id']] as const) {
    await db.schema.createTable(table, (t) => {
      t.increments('id');
      t.integer(scope).notNullable().references(scope === 'tenant_id' ? 'tenants.id' : 'repos.id');
      t.integer('user_id').notNullable().references('users.id');
      t.string('role', 8).notNullable();
      t.string('created_at', 32).notNullable();
      t.unique([scope, 'user_id']);
      t.index(['user_id']);
    });
  }
  await db.schema.createTable('pushes', (t) => {
    t.increments('id');
    t.integer('repo_id').notNullable().references('repos.id');
    // pending: the hook said ok and git may be updating refs; accepted: in the ledger; void: nothing landed.
    t.string('state', 8).notNullable();
    t.string('user_name', 64).notNullable();
    t.integer('user_id');
    t.string('transport', 8).notNullable();
    t.string('at', 32).notNullable();
    // Which process ran receive-pack, so a restarted server waits for its orphans before settling.
    t.string('host', 255).notNullable();
    t.integer('pid');
    t.integer('seq');
    t.string('prev_hash', 64);
    t.string('hash', 64);
    t.string('settled_at', 32);
    // Two replicas settling at once cannot fork a repo's ledger.
    t.unique(['repo_id', 'seq']);
    t.index(['state']);
  });
  await db.schema.createTable('push_updates', (t) => {
    t.increments('id');
    t.integer('push_id').notNullable().references('pushes.id');
    t.string('ref', 1024).notNullable();
    t.string('old_id', 64).notNullable();
    t.string('new_id', 64).notNullable();
    t.boolean('applied');
    t.index(['push_id']);
  });
}

export async function down(db: Knex): Promise<void> {
  for (const table of ['push_updates', 'pushes', 'repo_members', 'tenant_members', 'repos', 'tenants', 'tokens', 'users']) {
    await db.schema.dropTable(table);
  }
}
