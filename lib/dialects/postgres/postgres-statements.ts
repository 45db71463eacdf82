import { drawFencingToken } from './postgres-fencing-token';
import type { PostgresNames } from './postgres.schema';

const LIVE = '(locked_until IS NULL OR locked_until > clock_timestamp())';
const RECORD_COLUMNS = `name, owner, fencing_token, locked_by, lock_process, locked_until, created_at, updated_at,
  EXTRACT(EPOCH FROM locked_until - clock_timestamp())::float8 AS seconds_left`;

/** The statements of every lock operation, built once per table. */
export function postgresStatements({ table, sequence }: PostgresNames) {
  return {
    // The advisory lock on the name is taken before the fencing token is drawn, and is held to commit:
    // no other acquisition of the name can draw a token and be granted in between, so tokens of a
    // name grow in the order its acquisitions are granted, even when a row is inserted afresh.
    // The token also carries the server's timeline, so it grows across a failover (see drawFencingToken).
    // A name seen held is left alone before any lock is taken, so a failed attempt only reads: it
    // takes no row lock (which would hold up the holder's release) and commits nothing.
    acquire: `WITH acquired AS (
        INSERT INTO ${table} AS held (name, owner, locked_by, lock_process, locked_until, created_at, updated_at, fencing_token)
        SELECT $1::varchar, $2::varchar, $3::varchar, $4::int, clock.at + $5::float8 * interval '1 second',
          clock.at, clock.at, ${drawFencingToken(sequence)}
        FROM (
          SELECT pg_advisory_xact_lock($6::int, hashtext($1::varchar)), clock_timestamp() AS at
          WHERE NOT EXISTS (SELECT FROM ${table} WHERE name = $1 AND ${LIVE})
          OFFSET 0
        ) AS clock
        ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, locked_by = excluded.locked_by,
          lock_process = excluded.lock_process, locked_until = excluded.locked_until,
          created_at = excluded.created_at, updated_at = excluded.updated_at, fencing_token = excluded.fencing_token,
          waiting = false
        WHERE held.locked_until <= excluded.created_at
        RETURNING fencing_token, created_at, locked_until
      )
      SELECT true AS acquired, fencing_token, created_at, locked_until, NULL AS locked_by, NULL::float8 AS seconds_left
      FROM acquired
      UNION ALL
      SELECT false, NULL, NULL, locked_until, locked_by, EXTRACT(EPOCH FROM locked_until - clock_timestamp())::float8
      FROM ${table} WHERE name = $1 AND NOT EXISTS (SELECT FROM acquired)`,
    // NOTIFY only when a waiter flagged the row: PostgreSQL serialises the commits of notifying
    // transactions, so a release that always notified would lose much of its throughput.
    // A release does not wait for its commit to reach the disk (synchronous_commit off, for this
    // statement only): if the database crashed before the flush, the lock would stay held until its
    // lease ended, which delays others but never lets two hold it. The next acquisition's durable
    // commit flushes the release with it, since the log is written in order.
    release: `WITH released AS (
        DELETE FROM ${table} WHERE name = $1::varchar AND ($2::varchar IS NULL OR owner = $2) RETURNING locked_until, waiting
      ), notified AS (
        SELECT pg_notify($3::text, $1) FROM released WHERE waiting AND $3 IS NOT NULL
      )
      SELECT count(*) FILTER (WHERE ${LIVE})::int AS released, (SELECT count(*) FROM notified) AS notified,
        set_config('synchronous_commit', 'off', true) AS synchronous_commit
      FROM released`,
    // Only the first waiter writes the flag; the others read, so a crowd of waiters costs no commits.
    // Losing a flag in a crash only costs a NOTIFY (the waiter still polls), so it does not wait for the disk.
    // The waiter already LISTENs. It gets a row (the lease to sleep on) only when the release of the row
    // is sure to notify; otherwise no row, and it tries again at once. Every interleaving:
    // - It flagged the row: the UPDATE ran on the newest version, after a renewal or a release in flight
    //   had committed, so a later release reads the flag; a takeover only comes once the lease it reports ends.
    // - It flagged nothing, but its snapshot shows the live row flagged: a flag stays until the row is
    //   deleted (that release notifies, and commits after the snapshot, so after the LISTEN) or taken over
    //   (once the reported lease has ended, when the waiter wakes anyway; a renewal only makes it wake early).
    // - Otherwise the row was gone or expired in its snapshot, or changed after it: a release in flight
    //   deleted it before reading any flag (so it notifies nobody), or another waiter flagged it first.
    markWaiting: `WITH flagged AS (
        UPDATE ${table} SET waiting = true WHERE name = $1::varchar AND ${LIVE} AND NOT waiting
        RETURNING EXTRACT(EPOCH FROM locked_until - clock_timestamp())::float8 AS seconds_left
      )
      SELECT seconds_left, set_config('synchronous_commit', 'off', true) AS synchronous_commit FROM flagged
      UNION ALL
      SELECT EXTRACT(EPOCH FROM locked_until - clock_timestamp())::float8, NULL
      FROM ${table} WHERE name = $1 AND ${LIVE} AND waiting AND NOT EXISTS (SELECT FROM flagged)`,
    renew: `UPDATE ${table} AS held SET
        locked_until = CASE
          WHEN $3::text = 'set' THEN clock_timestamp() + $4::float8 * interval '1 second'
          WHEN held.locked_until IS NULL OR $4 IS NULL THEN NULL
          WHEN $3 = 'add' THEN held.locked_until + $4 * interval '1 second'
          ELSE greatest(held.locked_until, clock_timestamp() + $4 * interval '1 second')
        END,
        updated_at = clock_timestamp()
      WHERE name = $1::varchar AND ($2::varchar IS NULL OR owner = $2) AND ${LIVE}
      RETURNING ${RECORD_COLUMNS}`,
    find: `SELECT ${RECORD_COLUMNS} FROM ${table} WHERE name = $1::varchar AND ${LIVE}`,
    findForUpdate: `SELECT ${RECORD_COLUMNS} FROM ${table} WHERE name = $1::varchar AND ${LIVE} FOR UPDATE`,
    list: `SELECT ${RECORD_COLUMNS} FROM ${table} WHERE ${LIVE} ORDER BY name`,
    deleteExpired: `DELETE FROM ${table} WHERE name IN (
        SELECT name FROM ${table} WHERE locked_until <= clock_timestamp() LIMIT $1 FOR UPDATE SKIP LOCKED
      ) AND locked_until <= clock_timestamp()`,
    // In the order of their keys, not of the names: two calls with names whose 32-bit keys collide would
    // otherwise take them in opposite orders. PostgreSQL calls the volatile lock function after the sort.
    lockNames: `SELECT pg_advisory_xact_lock($1::int, key)
      FROM (SELECT DISTINCT hashtext(name) AS key FROM unnest($2::varchar[]) AS name) AS keys ORDER BY key`,
  };
}
