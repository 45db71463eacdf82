/**
 * The two servers behind TypeORM's `mysql` and `mariadb` types. MariaDB (10.6+) has sequences and
 * INSERT … RETURNING, so an acquisition is one statement there; MySQL (8.0.17+) has neither, so it
 * takes a short transaction and draws fencing tokens from a one-row counter table.
 */
export type MysqlServer = 'mariadb' | 'mysql';

/**
 * The collation nestjs-lockmgr creates the lock table with, on each server: binary and NO PAD, so names
 * compare byte for byte, trailing spaces included. A django-lockmgr table keeps the database's.
 */
export const MYSQL_TABLE_COLLATION: Record<MysqlServer, string> = { mariadb: 'utf8mb4_nopad_bin', mysql: 'utf8mb4_0900_bin' };

/** What `SELECT VERSION()` tells of the server. */
export interface DetectedMysqlServer {
  server: MysqlServer;
  /** Whether SQL can draw cryptographically random bytes: `RANDOM_BYTES()`, in every supported MySQL and in MariaDB from 10.10. */
  randomBytes: boolean;
}

/** Which server answered `SELECT VERSION()`, refusing versions that lack what the lock table needs. */
export async function detectMysqlServer(query: (sql: string) => Promise<{ version: string }[]>): Promise<DetectedMysqlServer> {
  const [{ version }] = await query('SELECT VERSION() AS version');
  const parts = (/^(\d+)\.(\d+)\.(\d+)/.exec(version) ?? []).slice(1).map(Number);
  const atLeast = (...wanted: number[]) => compare(parts, wanted) >= 0;
  if (/mariadb/i.test(version)) {
    if (!atLeast(10, 6, 0)) throw new Error(`nestjs-lockmgr needs MariaDB 10.6 or later (for SKIP LOCKED, sequences and INSERT … RETURNING); the server is ${version}.`);
    return { server: 'mariadb', randomBytes: atLeast(10, 10, 0) };
  }
  if (!atLeast(8, 0, 17)) throw new Error(`nestjs-lockmgr needs MySQL 8.0.17 or later (for the utf8mb4_0900_bin collation); the server is ${version}.`);
  return { server: 'mysql', randomBytes: true };
}

/** Negative, zero or positive as `version` is older than, equal to or newer than `wanted`; an unparsed version is older. */
function compare(version: number[], wanted: number[]): number {
  for (let i = 0; i < wanted.length; i++) if ((version[i] ?? -1) !== wanted[i]) return (version[i] ?? -1) - wanted[i];
  return 0;
}
