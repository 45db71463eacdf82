import { drawFencingToken } from './postgres-fencing-token';
import { FREE_ROW, FREE_ROW_VALUES, PLACED } from './postgres-queue.schema';
import type { PostgresNames } from './postgres-names';

const LIVE = '(locked_until IS NULL OR locked_until > clock_timestamp())';
const RECORD_COLUMNS = `name, owner, fencing_token, locked_by, lock_process, locked_until, created_at, updated_at,
  EXTRACT(EPOCH FROM locked_until - clock_timestamp())::float8 AS seconds_left`;

/** The statements of every lock operation, built once per table. */
export function postgresStatements({ table, sequence, queue, placesAhead, handOff, served }: PostgresNames) {
  return {
    // The advisory lock on the name is taken before the fencing token is drawn, and is held to commit:
    // no other acquisition of the name can draw a token and be granted in between, so tokens of a
    // name grow in the order its acquisitions are granted, even when a row is inserted afresh.
    // The token also carries the server's timeline, so it grows across a failover (see drawFencingToken).
    // A name seen held is left alone before any lock is taken, so a failed attempt only reads: it
    // takes no row lock (which would hold up the holder's release) and commits nothing.
    // The queue is read only for a name whose row is flagged, through a function (`queueFunctions`): while
    // waiters have places, their name keeps a row (held, or free with the flag), so an acquisition of a
    // name without a row, the common case, costs nothing more. `$7` is the caller's place, if it has one,
    // and `$8` whether the queue applies: a free, flagged name goes to the first live place, whose place
    // goes with it. Taking it keeps the flag of the newest row version, which a waiter may have set after
    // this statement's snapshot.
    acquire: `WITH acquired AS (
        INSERT INTO ${table} AS held (name, owner, locked_by, lock_process, locked_until, created_at, updated_at, fencing_token)
        SELECT $1::varchar, $2::varchar, $3::varchar, $4::int, clock.at + $5::float8 * interval '1 second',
          clock.at, clock.at, ${drawFencingToken(sequence)}
        FROM (
          SELECT pg_advisory_xact_lock($6::int, hashtext($1::varchar)), clock_timestamp() AS at
          WHERE NOT EXISTS (SELECT FROM ${table} WHERE name = $1 AND (${LIVE} OR (waiting AND $8::boolean AND ${placesAhead}($1, $7::uuid))))
          OFFSET 0
        ) AS clock
        ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, locked_by = excluded.locked_by,
          lock_process = excluded.lock_process, locked_until = excluded.locked_until,
          created_at = excluded.created_at, updated_at = excluded.updated_at, fencing_token = excluded.fencing_token
        WHERE held.locked_until <= excluded.created_at
        RETURNING fencing_token, created_at, locked_until, $7 IS NOT NULL AND ${served}($7)
      )
      SELECT true AS acquired, fencing_token, created_at, locked_until, NULL AS locked_by, NULL::float8 AS seconds_left,
        true AS found, false AS queued
      FROM acquired
      UNION ALL
      SELECT false, NULL, NULL, held.locked_until, held.locked_by, EXTRACT(EPOCH FROM held.locked_until - clock_timestamp())::float8,
        held.name IS NOT NULL, coalesce(held.waiting, false) AND $8 AND ${placesAhead}($1, $7)
      FROM (SELECT) AS one LEFT JOIN ${table} AS held ON held.name = $1
      WHERE NOT EXISTS (SELECT FROM acquired)`,
    // NOTIFY only when a waiter flagged the row: PostgreSQL serialises the commits of notifying
    // transactions, so a release that always notified would lose much of its throughput. The hand-off
    // function notifies the first live place on its app's own channel, so that only that app wakes and
    // only that waiter tries again, and keeps a free, flagged row for it; with no live place, every
    // waiter of the name, since one may have flagged the row before it had a place to read.
    // A release does not wait for its commit to reach the disk (synchronous_commit off, for this
    // statement only): if the database crashed before the flush, the lock would stay held until its
    // lease ended, which delays others but never lets two hold it. The next acquisition's durable
    // commit flushes the release with it, since the log is written in order.
    release: `WITH released AS (
        DELETE FROM ${table} WHERE name = $1::varchar AND ($2::varchar IS NULL OR owner = $2)
        RETURNING locked_until, waiting
      ), next AS (
        SELECT ${handOff}($1, $3::text) AS waiter FROM released WHERE waiting
      )
      SELECT count(*) FILTER (WHERE ${LIVE})::int AS released, (SELECT waiter FROM next) AS next,
        set_config('synchronous_commit', 'off', true) AS synchronous_commit
      FROM released`,
    // A waiter takes its place at the end of the queue (or renews it, if it has one: the waiter names its
    // place, so a place whose answer was lost is found again), and flags the name's row, making a free,
    // flagged one if there is none. The waiter's app already LISTENs, on `$4` (null: it cannot). The
    // upsert meets the newest version of the row, under its row lock, so it sees what any release or
    // acquisition committed before it, and those after it see the flag: a release then notifies the
    // first place, and an acquisition keeps the flag. It answers whether the row is held (with its
    // lease), and whether places come first.
    // Losing a flag or a place in a crash only costs a NOTIFY (the waiter still polls), so neither waits for the disk.
    enqueue: `WITH place AS (
        INSERT INTO ${queue} (waiter, name, lapses_at, channel)
        VALUES ($2::uuid, $1::varchar, clock_timestamp() + $3::float8 * interval '1 second', $4::text)
        ON CONFLICT (waiter) DO UPDATE SET lapses_at = excluded.lapses_at, channel = excluded.channel
        RETURNING ticket
      ), flagged AS (
        INSERT INTO ${table} ${FREE_ROW} VALUES ($1::varchar, ${FREE_ROW_VALUES})
        ON CONFLICT (name) DO UPDATE SET waiting = true
        RETURNING ${LIVE} AS held, EXTRACT(EPOCH FROM locked_until - clock_timestamp())::float8 AS seconds_left
      )
      SELECT held, seconds_left,
        EXISTS (SELECT FROM ${queue} WHERE name = $1 AND ticket < (SELECT ticket FROM place) AND ${PLACED}) AS queued,
        set_config('synchronous_commit', 'off', true) AS synchronous_commit
      FROM flagged`,
    // Each process renews its waiters' places in one statement, and learns which of them are first in
    // line for a free name: a notice lost (or never sent, as when the waiter ahead died) delays them by
    // one heartbeat at most. A place missing here was lost; its waiter takes a new one.
    renewPlaces: `WITH kept AS (
        UPDATE ${queue} SET lapses_at = clock_timestamp() + $2::float8 * interval '1 second' WHERE waiter = ANY($1::uuid[])
        RETURNING waiter, ticket, name
      )
      SELECT waiter, NOT EXISTS (SELECT FROM ${table} WHERE name = kept.name AND ${LIVE})
        AND NOT EXISTS (SELECT FROM ${queue} AS ahead WHERE ahead.name = kept.name AND ahead.ticket < kept.ticket AND ahead.${PLACED}) AS due
      FROM kept`,
    // A waiter that gives up leaves its place; if the name is free, the next live place is told at once
    // (as a release tells it), since the notice of the last release may have been addressed to the one leaving.
    leave: `WITH gone AS (
        DELETE FROM ${queue} WHERE waiter = $1::uuid RETURNING name
      ), next AS (
        SELECT place.waiter, place.channel FROM gone JOIN ${queue} AS place ON place.name = gone.name AND place.${PLACED} AND place.waiter <> $1
        WHERE NOT EXISTS (SELECT FROM ${table} WHERE name = gone.name AND ${LIVE})
        ORDER BY place.ticket LIMIT 1
      ), notified AS (
        SELECT pg_notify(channel, waiter::text) FROM next WHERE $2::boolean AND channel IS NOT NULL
      )
      SELECT waiter, (SELECT count(*) FROM notified) AS notified FROM next`,
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
    // Places that lapsed go too: every statement already passes them over, this only frees their space.
    deleteExpired: `WITH lapsed AS (
        DELETE FROM ${queue} WHERE waiter IN (SELECT waiter FROM ${queue} WHERE lapses_at <= clock_timestamp() LIMIT $1 FOR UPDATE SKIP LOCKED)
          AND lapses_at <= clock_timestamp()
      )
      DELETE FROM ${table} AS expired WHERE name IN (
        SELECT name FROM ${table} WHERE locked_until <= clock_timestamp() LIMIT $1 FOR UPDATE SKIP LOCKED
      ) AND locked_until <= clock_timestamp()
        AND NOT (waiting AND EXISTS (SELECT FROM ${queue} WHERE name = expired.name AND ${PLACED}))`,
    // In the order of their keys, not of the names: two calls with names whose 32-bit keys collide would
    // otherwise take them in opposite orders. PostgreSQL calls the volatile lock function after the sort.
    lockNames: `SELECT pg_advisory_xact_lock($1::int, key)
      FROM (SELECT DISTINCT hashtext(name) AS key FROM unnest($2::varchar[]) AS name) AS keys ORDER BY key`,
  };
}
