import type { Knex } from 'knex';

// A key remembers the token that added it: revoking a token (it leaked) removes the keys it added, so a
// stolen token cannot leave a key behind as a way back in.
export async function up(db: Knex): Promise<void> {
  await db.schema.alterTable('ssh_keys', (t) => { t.string('added_by_token', 32); t.index(['added_by_token']); });
}

export async function down(db: Knex): Promise<void> {
  await db.schema.alterTable('ssh_keys', (t) => { t.dropIndex(['added_by_token']); t.dropColumn('added_by_token'); });
}
