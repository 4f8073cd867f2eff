import { CairnError } from '../errors';
import { Db, mapDbError, now } from '../db';
import { nameKey } from '../names';

type UserRow = { id: number; name: string; name_key: string; is_admin: boolean | number; created_at: string };
export type User = { id: number; name: string; isAdmin: boolean; createdAt: string };
// SQLite answers booleans as 0/1; converting here keeps the engine invisible above store/.
const toUser = (r: UserRow): User => ({ id: r.id, name: r.name, isAdmin: Boolean(r.is_admin), createdAt: r.created_at });

export async function createUser(db: Db, name: string, isAdmin: boolean): Promise<User> {
  try {
    const [row] = await db<UserRow>('users')
      .insert({ name, name_key: nameKey(name), is_admin: isAdmin, created_at: now() }).returning('*');
    return toUser(row as UserRow);
  } catch (err) {
    throw mapDbError(err, () => new CairnError('name_taken', `user ${name} already exists`));
  }
}

export async function findUserByName(db: Db, name: string): Promise<User | null> {
  const row = await db<UserRow>('users').where('name_key', nameKey(name)).first();
  return row ? toUser(row) : null;
}

export async function findUserById(db: Db, id: number): Promise<User | null> {
  const row = await db<UserRow>('users').where('id', id).first();
  return row ? toUser(row) : null;
}

export async function listUsers(db: Db, limit: number, afterId: number): Promise<User[]> {
  return (await db<UserRow>('users').where('id', '>', afterId).orderBy('id').limit(limit)).map(toUser);
}
