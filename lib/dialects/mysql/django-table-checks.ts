import type { Pool, RowDataPacket } from 'mysql2/promise';
import { MYSQL_TABLE_COLLATION, MysqlServer } from './mysql-server';

/** What the catalog says of the `name` column. */
export interface NameColumn {
  /** As declared, such as `varchar(100)`. */
  type: string;
  /** Null for a binary string, which compares byte for byte. */
  collation: string | null;
}

/**
 * A warning when the `name` column compares names other than byte for byte: the binary NO PAD
 * collations of either server are the only ones that tell `k`, `K`, `k ` and `ķ` apart. A table that
 * Django created keeps the database's collation, usually case- and accent-insensitive, and PAD SPACE.
 * The fix changes the column under Django too, so it is left to the table's owner.
 */
export function inexactCollationWarning(tableName: string, table: string, column: NameColumn, server: MysqlServer): string | undefined {
  if (column.collation === null || /_(nopad|0900)_bin$/.test(column.collation)) return undefined;
  const fix = `ALTER TABLE ${table} MODIFY name ${column.type} CHARACTER SET utf8mb4 COLLATE ${MYSQL_TABLE_COLLATION[server]} NOT NULL`;
  return (
    `The lock table "${tableName}" compares names under the collation ${column.collation}, as a table Django creates does (it keeps ` +
    `the database's collation): names that differ only in case, accents or trailing spaces, such as "k", "K", "ķ" and "k ", can be ` +
    `one lock there. To make them different locks, the table's owner (an account that may alter it, such as the one Django migrates ` +
    `with) can run: ${fix}. It changes Django's own queries of the table too: a Django lock on "K" no longer finds "k".`
  );
}

/** Stamps ahead of the database's UTC clock by this much come from no writer that writes UTC (Django's hosts are on NTP). */
const AHEAD_SECONDS = 15 * 60;
/** How far a stamp behind the database's clock may be from whole hours: django-lockmgr's default lease, 600 seconds. */
const TOLERANCE_SECONDS = 600;
const HOUR = 3600;

/**
 * Looks for rows a Django service wrote in local time (USE_TZ = False, or a TIME_ZONE in its DATABASES
 * entry): MySQL's datetime has no zone, and the lock table holds UTC, so such rows are off by the
 * zone's offset.
 *
 * Only rows Django inserted are looked at. Every owner token this package writes is a version-4 UUID
 * (`randomUUID()`); Django does not know the column, so the rows it inserts get the column's default:
 * 32 hex digits, or (in tables of earlier versions) a version-1 UUID. Our own
 * rows carry the database's UTC time, but one can be a whole number of hours old (a lock that never
 * expires, or an expired row not yet cleaned up): leaving them out is what keeps them from a false alarm.
 *
 * Such a row is suspect when its `updated_at` is:
 * - ahead of the database's UTC clock by a quarter of an hour or more: no writer of UTC does that,
 *   and it is what a zone east of UTC gives to rows written less than the offset ago;
 * - behind it by a whole number of hours, within one default lease, on a row that has expired by our
 *   clock: what a zone west of UTC gives to a row just written, which we would take over while Django
 *   holds it. A row really written hours ago and never cleaned up could match too; the clean-up of
 *   expired rows (ours every minute, Django's at every `get_lock`) makes that rare.
 */
export async function localTimeWarning(pool: Pick<Pool, 'execute'>, tableName: string, table: string): Promise<string | undefined> {
  const [rows] = await pool.execute<RowDataPacket[]>(
    `SELECT name, drift FROM (
        SELECT name, locked_until <= UTC_TIMESTAMP(6) AS expired, TIMESTAMPDIFF(SECOND, UTC_TIMESTAMP(6), updated_at) AS drift
        FROM ${table} WHERE owner NOT LIKE '________-____-4___-____-____________'
      ) AS django
      WHERE drift >= ${AHEAD_SECONDS}
        OR (expired AND drift <= ${TOLERANCE_SECONDS - HOUR} AND ABS(drift - ROUND(drift / ${HOUR}) * ${HOUR}) <= ${TOLERANCE_SECONDS})
      ORDER BY ABS(drift) DESC LIMIT 1`,
  );
  if (rows.length === 0) return undefined;
  const name = rows[0].name as string;
  const drift = Number(rows[0].drift);
  const minutes = Math.round(Math.abs(drift) / 60);
  const offset = `${Math.floor(minutes / 60)} h ${minutes % 60} min`;
  return (
    `Rows that django-lockmgr inserted in the lock table "${tableName}" look stamped in local time, not UTC: the lock "${name}" ` +
    `was updated ${drift > 0 ? `${offset} ahead of the database's UTC clock` : `${offset} before it, and counts as expired`}. ` +
    `Django writes local times to MySQL and MariaDB when USE_TZ is False or its DATABASES entry sets TIME_ZONE (or its hosts' clocks are off), ` +
    `and nestjs-lockmgr reads them as UTC: each side then misjudges when the other's locks expire by the offset, and takes locks the other ` +
    `still holds. Set USE_TZ = True and no TIME_ZONE in the database's entry.`
  );
}
