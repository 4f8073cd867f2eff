import type { Knex } from 'knex';

// A token minted with another token remembers it, so revoking the first revokes what it minted: a leaked
// token cannot buy itself a longer life.
export async function up(db: Knex): Promise<void> {
  await db.schema.alterTable('tokens', (t) => {
    t.string('issued_by', 32);
    t.index(['issued_by']);
  });
}

export async function down(db: Knex): Promise<void> {
  await db.schema.alterTable('tokens', (t) => { t.dropIndex(['issued_by']); t.dropColumn('issued_by'); });
}
