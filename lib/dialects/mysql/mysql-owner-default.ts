import type { DetectedMysqlServer } from './mysql-server';

/** The SQL that makes an owner token from 16 cryptographically random bytes, as 32 hex digits. */
const RANDOM_OWNER = 'LOWER(HEX(RANDOM_BYTES(16)))';

/**
 * The default of the `owner` column on MariaDB, which is the owner token of every row a Django service
 * inserts (Django knows nothing of the column). An owner token lets whoever knows it release and renew
 * the lock as its holder, so it must not be guessable: `RANDOM_BYTES` draws from the SSL library's
 * cryptographic generator. MariaDB before 10.10 has no such source in SQL (`RAND()` is a seeded
 * generator; `UUID()` is a version-1 UUID, made of the time and the server's MAC address), so there
 * the column keeps the `UUID()` of earlier versions.
 */
export function mariadbOwnerDefault(detected: DetectedMysqlServer): string {
  return detected.randomBytes ? `(${RANDOM_OWNER})` : '(UUID())';
}

/**
 * Whether the owner column (its default as the catalog shows it) still has the `UUID()` default of
 * earlier versions on a server that can do better. Any other default was chosen by someone, and is kept.
 */
export function ownerDefaultOutdated(detected: DetectedMysqlServer, columnDefault: string | null | undefined): boolean {
  return detected.server === 'mariadb' && detected.randomBytes && columnDefault?.toLowerCase() === 'uuid()';
}

/** Gives the owner column of a table made by an earlier version the random default; idempotent. */
export function ownerDefaultStatement(table: string): string {
  return `ALTER TABLE ${table} ALTER COLUMN owner SET DEFAULT (${RANDOM_OWNER})`;
}

/** What start-up says when the owner column keeps the `UUID()` default because this account may not change it. */
export function outdatedOwnerDefaultWarning(tableName: string, table: string): string {
  return (
    `The owner column of the lock table "${tableName}" still has the default of earlier versions, UUID(): the rows a Django ` +
    `service inserts get version-1 UUIDs as owner tokens, made of the time and the server's MAC address, which can be guessed. ` +
    `Start once with ensureTable on and an account that may alter the table, run the lock table migration again, or run: ` +
    `${ownerDefaultStatement(table)}`
  );
}
