import type { Knex } from 'knex';

// SSH public keys: a user's own, a tenant's (read-only) deploy keys, a repo's deploy keys. One table, so
// the unique fingerprint makes a key identify exactly one principal across all three.
export async function up(db: Knex): Promise<void> {
  await db.schema.createTable('ssh_keys', (t) => {
    t.increments('id');
    t.string('fingerprint', 64).notNullable().unique();
    t.string('type', 32).notNullable();
    t.string('title', 255).notNullable();
    t.text('public_key').notNullable();
    t.integer('user_id').references('users.id');
    t.integer('tenant_id').references('tenants.id');
    t.integer('repo_id').references('repos.id');
    t.boolean('write').notNullable().defaultTo(false);
    t.string('created_at', 32).notNullable();
    t.index(['user_id']);
    t.index(['tenant_id']);
    t.index(['repo_id']);
  });
}

export async function down(db: Knex): Promise<void> {
  await db.schema.dropTable('ssh_keys');
}
