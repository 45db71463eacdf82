import type { MysqlNames } from './mysql.schema';
import type { MysqlServer } from './mysql-server';

const NOW = 'UTC_TIMESTAMP(6)';
const EXPIRED = `locked_until <= ${NOW}`;
const LIVE = `(locked_until IS NULL OR locked_until > ${NOW})`;
const SECONDS_LEFT = `TIMESTAMPDIFF(MICROSECOND, ${NOW}, locked_until) * 1e-6`;
const RECORD_COLUMNS = `name, owner, fencing_token, locked_by, lock_process, locked_until, created_at, updated_at,
  ${SECONDS_LEFT} AS seconds_left`;
/** Leases travel as whole microseconds (null: never expires), so the database adds them to its own clock. */
const nowPlus = (microseconds: string) => `${NOW} + INTERVAL ${microseconds} MICROSECOND`;

/**
 * Takes `:name` when it is free or expired, in one INSERT … ON DUPLICATE KEY UPDATE: the row is
 * inserted, or locked and taken over, or (held by someone live) locked and left as it is. It never
 * fails on a duplicate key, and it reads nothing first: a SELECT … FOR UPDATE of a missing row takes a
 * gap lock, and two of those deadlock as soon as both insert.
 *
 * Every assignment tests the old `locked_until`, which is why it is assigned last (MariaDB's
 * SIMULTANEOUS_ASSIGNMENT mode reads old values anyway). A never-expiring lock (NULL) is never taken over.
 *
 * With `drawToken` (MariaDB), the statement also draws the fencing token and returns the row. The
 * token cannot come from the VALUES list: that is evaluated before the key is checked, so a token could
 * be drawn, lose a race to an acquisition (and release) of the same name, and be granted after a
 * higher one. So the row is listed twice: the second copy always meets the row the first one inserted
 * or took over, and draws the token there, under its row lock, after the conflict check. Without
 * `drawToken` (MySQL) a taken row gets token 0 until `grant` draws one in the same transaction.
 */
function claimStatement(table: string, drawToken?: string): string {
  const row = `(:name, :owner, :lockedBy, :lockProcess, ${nowPlus(':microseconds')}, ${NOW}, ${NOW}, 0)`;
  const token = drawToken
    ? `IF(${EXPIRED} OR (owner = VALUES(owner) AND fencing_token = 0), ${drawToken}, fencing_token)`
    : `IF(${EXPIRED}, 0, fencing_token)`;
  const takeOver = (column: string) => `${column} = IF(${EXPIRED}, VALUES(${column}), ${column})`;
  return `INSERT INTO ${table} (name, owner, locked_by, lock_process, locked_until, created_at, updated_at, fencing_token)
    VALUES ${drawToken ? `${row}, ${row}` : row}
    ON DUPLICATE KEY UPDATE fencing_token = ${token},
      ${['owner', 'locked_by', 'lock_process', 'created_at', 'updated_at', 'locked_until'].map(takeOver).join(', ')}
    ${drawToken ? `RETURNING ${RECORD_COLUMNS}` : ''}`;
}

/**
 * The named lock (`GET_LOCK`) by which the app waiting for the lock `name` (an SQL expression) is found:
 * a hash of the database, table and name, since named locks are the server's, which fits any server's
 * limit on their length. Hashed as bytes: the three come in character sets and collations that
 * CONCAT_WS will not mix (a lock's name may hold characters that the database name's utf8mb3 cannot).
 */
export const mysqlWaitFlag = (table: string, name: string) =>
  `CONCAT('lockmgr ', SHA1(CONCAT_WS(_binary'/', CAST(DATABASE() AS BINARY), _binary'${table}', CAST(${name} AS BINARY))))`;

const columns = (count: number, column: (index: number) => string) => Array.from({ length: count }, (_, index) => column(index)).join(', ');

/**
 * The statements of the connection that watches for releases on MariaDB (see `MysqlReleaseWatcher`),
 * for a number of lock names, bound in order; one column per name, named by its place.
 */
export function mysqlWatchStatements({ table }: MysqlNames) {
  return {
    // A flag this connection holds already is not taken again: named locks nest, and one taken twice would outlast its release.
    flags: (take: number, letGo: number) =>
      `SELECT ${columns(take, (i) => `IF(IS_USED_LOCK(${mysqlWaitFlag(table, '?')}) <=> CONNECTION_ID(), 1, GET_LOCK(${mysqlWaitFlag(table, '?')}, 0)) AS t${i}`)}
        ${take && letGo ? ',' : ''} ${columns(letGo, (i) => `RELEASE_LOCK(${mysqlWaitFlag(table, '?')}) AS r${i}`)}`,
    // A locking read: it waits for a release under way to commit, and reads each live lock's seconds left, 'never' if it never expires.
    check: (count: number) =>
      `SELECT ${columns(count, (i) => `(SELECT IFNULL(${SECONDS_LEFT}, 'never') FROM ${table} WHERE name = ? AND ${LIVE} LOCK IN SHARE MODE) AS s${i}`)}`,
    sleep: (count: number, seconds: number) =>
      `SELECT IF(${Array.from({ length: count }, () => `EXISTS (SELECT 1 FROM ${table} WHERE name = ? AND ${LIVE})`).join(' AND ')}, SLEEP(${seconds}), 0) AS slept`,
  };
}

/** The statements of every operation, built once per table and server. */
export function mysqlStatements({ table, sequence, counter }: MysqlNames, server: MysqlServer) {
  const release = `DELETE FROM ${table} WHERE name = :name AND (:owner IS NULL OR owner = :owner) AND ${LIVE}`;
  return {
    claim: claimStatement(table, server === 'mariadb' ? `NEXT VALUE FOR ${sequence}` : undefined),
    // MySQL only: reading back what the claim did, and drawing and setting the token.
    claimed: `SELECT ${RECORD_COLUMNS} FROM ${table} WHERE name = :name FOR UPDATE`,
    // LAST_INSERT_ID(expr) hands the new value back in the OK packet, so drawing is one statement.
    drawToken: `UPDATE ${counter} SET last_token = LAST_INSERT_ID(last_token + 1) WHERE id = 1`,
    setToken: `UPDATE ${table} SET fencing_token = :token WHERE name = :name`,
    release,
    // MariaDB: the release also reads, in the same round trip, which connection (if any) waits for the lock to be released.
    releaseWatched: `${release} RETURNING IS_USED_LOCK(${mysqlWaitFlag(table, ':name')}) AS watcher`,
    // LAST_INSERT_ID(fencing_token) reports which acquisition was renewed, so that the row read back
    // afterwards is that one, not a lock someone took after it was released in between.
    renew: `UPDATE ${table} SET
        locked_until = CASE
          WHEN :mode = 'set' THEN ${nowPlus(':microseconds')}
          WHEN locked_until IS NULL OR :microseconds IS NULL THEN NULL
          WHEN :mode = 'add' THEN locked_until + INTERVAL :microseconds MICROSECOND
          ELSE GREATEST(locked_until, ${nowPlus(':microseconds')})
        END,
        updated_at = ${NOW},
        fencing_token = LAST_INSERT_ID(fencing_token)
      WHERE name = :name AND (:owner IS NULL OR owner = :owner) AND ${LIVE}`,
    // Not filtered on liveness: the token names the acquisition just renewed, and a short lease may be
    // over by the time this runs, as it may be by the time any store's answer arrives.
    renewed: `SELECT ${RECORD_COLUMNS} FROM ${table} WHERE name = :name AND fencing_token = :token`,
    find: `SELECT ${RECORD_COLUMNS} FROM ${table} WHERE name = :name AND ${LIVE}`,
    findForUpdate: `SELECT ${RECORD_COLUMNS} FROM ${table} WHERE name = :name AND ${LIVE} FOR UPDATE`,
    list: `SELECT ${RECORD_COLUMNS} FROM ${table} WHERE ${LIVE} ORDER BY name`,
    // The clean-up never waits for a row another transaction holds, live or expired (a live lock's row in an
    // app's transaction, an expired row being taken over), and deletes only rows it has locked itself: a
    // DELETE that searched the table would wait for such rows, holding those it had already deleted, and
    // every acquirer of those names would wait too. The index on locked_until keeps the search among the
    // expired rows; without it, the search reads the whole table, skipping what others hold.
    lockExpired: `SELECT name FROM ${table} WHERE ${EXPIRED} LIMIT :limit FOR UPDATE SKIP LOCKED`,
    // By primary key only: on a small table the optimizer would rather read every row, and wait for some.
    // (The multi-table form, because only it takes an index hint.)
    deleteLocked: (count: number) =>
      `DELETE ${table} FROM ${table} FORCE INDEX (PRIMARY)
        WHERE name IN (${Array.from({ length: count }, () => '?').join(', ')}) AND ${EXPIRED}`,
  };
}
