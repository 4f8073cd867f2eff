import type { Knex } from 'knex';

// Who holds a delivery's lease (host:pid), so a restarted server takes back at once what its killed
// predecessor was sending, instead of waiting for the lease to run out.
export async function up(db: Knex): Promise<void> {
  await db.schema.alterTable('webhook_deliveries', (t) => { t.string('lease_owner', 300); });
}

export async function down(db: Knex): Promise<void> {
  await db.schema.alterTable('webhook_deliveries', (t) => { t.dropColumn('lease_owner'); });
}
