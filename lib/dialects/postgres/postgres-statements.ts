import { drawFencingToken } from './postgres-fencing-token';
import { LIVE, placed } from './postgres-queue.schema';
import type { PostgresNames } from './postgres-names';

const RECORD_COLUMNS = `name, owner, fencing_token, locked_by, lock_process, locked_until, created_at, updated_at,
  EXTRACT(EPOCH FROM locked_until - clock_timestamp())::float8 AS seconds_left`;

/** The statements of every lock operation, built once per table. */
export function postgresStatements({ table, sequence, queue, placesAhead, takePlace, handOver, served }: PostgresNames) {
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
    // With the values of `enqueue` (`$9` to `$18`, null without), a caller that is going to wait takes its
    // place in the same statement when it gets no lock: that answer, read from the newest row version,
    // replaces the snapshot's view of the holder's lease and of the places ahead.
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
      ), place AS (
        SELECT ${takePlace}($9::varchar, $10::uuid, $11::float8, $12::text, $13::text, $14::text, $15::int, $16::float8, $17::int, $18::timestamptz) AS answer
        WHERE $10 IS NOT NULL AND NOT EXISTS (SELECT FROM acquired)
      )
      SELECT true AS acquired, fencing_token, created_at, locked_until, NULL AS locked_by, NULL::float8 AS seconds_left,
        true AS found, false AS queued, NULL::boolean AS place_held
      FROM acquired
      UNION ALL
      SELECT false, NULL, NULL, held.locked_until, held.locked_by,
        CASE WHEN place.answer IS NULL THEN EXTRACT(EPOCH FROM held.locked_until - clock_timestamp())::float8 ELSE (place.answer).seconds_left END,
        held.name IS NOT NULL,
        CASE WHEN place.answer IS NULL THEN coalesce(held.waiting, false) AND $8 AND ${placesAhead}($1, $7) ELSE (place.answer).queued END,
        (place.answer).held
      FROM (SELECT) AS one LEFT JOIN ${table} AS held ON held.name = $1 LEFT JOIN place ON true
      WHERE NOT EXISTS (SELECT FROM acquired)`,
    // NOTIFY only when a waiter flagged the row: PostgreSQL serialises the commits of notifying
    // transactions, so a release that always notified would lose much of its throughput. The hand-over
    // function serves the first live place: it hands the lock over to it, or keeps a free, flagged row
    // for it, and notifies its app alone, on that app's own channel; with no live place, it notifies
    // every waiter of the name, since one may have flagged the row before it had a place to read.
    // `next` is what the first place's app is told (see `queueFunctions`).
    // A release does not wait for its commit to reach the disk (synchronous_commit off, for this
    // statement only): if the database crashed before the flush, the lock would stay held until its
    // lease ended, which delays others but never lets two hold it. The next acquisition's durable
    // commit flushes the release with it, since the log is written in order. A release that handed the
    // lock over (its notice has a space) commits an acquisition, which waits for the disk, and for a
    // synchronous standby, as every acquisition does: lost, the waiter would believe it holds a lock
    // that the database gives to another once the earlier lease ends.
    release: `WITH released AS (
        DELETE FROM ${table} WHERE name = $1::varchar AND ($2::varchar IS NULL OR owner = $2)
        RETURNING locked_until, waiting, owner
      ), next AS (
        SELECT ${handOver}($1, $3::text, owner) AS waiter FROM released WHERE waiting
      )
      SELECT count(*) FILTER (WHERE ${LIVE})::int AS released, (SELECT waiter FROM next) AS next,
        set_config('synchronous_commit',
          CASE WHEN strpos(coalesce((SELECT waiter FROM next), ''), ' ') > 0 THEN current_setting('synchronous_commit') ELSE 'off' END,
          true) AS synchronous_commit
      FROM released`,
    // A waiter takes or renews its place (see `queueFunctions`).
    enqueue: `SELECT held, seconds_left, granted, queued
      FROM ${takePlace}($1::varchar, $2::uuid, $3::float8, $4::text, $5::text, $6::text, $7::int, $8::float8, $9::int, $10::timestamptz)`,
    // The lock a release handed over to a place, read by its owner token, once the place is seen granted
    // (the notice of the hand-over may be lost, like any notice): none if it was force-released or ran out.
    handedOver: `SELECT fencing_token, locked_until, created_at FROM ${table} WHERE name = $1::varchar AND owner = $2::varchar AND ${LIVE}`,
    // Each process renews its waiters' places in one statement, and learns which of them are first in
    // line for a free name: a notice lost (or never sent, as when the waiter ahead died) delays them by
    // one heartbeat at most. A place missing here was lost; its waiter takes a new one. A place seen
    // granted was handed the lock.
    renewPlaces: `WITH kept AS (
        UPDATE ${queue} SET lapses_at = clock_timestamp() + $2::float8 * interval '1 second' WHERE waiter = ANY($1::uuid[])
        RETURNING waiter, ticket, name, granted
      )
      SELECT waiter, granted, NOT granted AND NOT EXISTS (SELECT FROM ${table} WHERE name = kept.name AND ${LIVE})
        AND NOT EXISTS (SELECT FROM ${queue} AS ahead WHERE ahead.name = kept.name AND ahead.ticket < kept.ticket AND ${placed('ahead')}) AS due
      FROM kept`,
    // A waiter that gives up leaves its place; if the name is free, the next live place is told at once
    // (as a release tells it), since the notice of the last release may have been addressed to the one
    // leaving. A place found granted was handed the lock: its waiter releases it next (in a statement of
    // its own, whose snapshot shows the lock of a hand-over that this one waited for).
    leave: `WITH gone AS (
        DELETE FROM ${queue} WHERE waiter = $1::uuid RETURNING name, granted
      ), next AS (
        SELECT place.waiter, place.channel FROM gone JOIN ${queue} AS place ON place.name = gone.name AND ${placed('place')} AND place.waiter <> $1
        WHERE NOT gone.granted AND NOT EXISTS (SELECT FROM ${table} WHERE name = gone.name AND ${LIVE})
        ORDER BY place.ticket LIMIT 1
      ), notified AS (
        SELECT pg_notify(channel, waiter::text) FROM next WHERE $2::boolean AND channel IS NOT NULL
      )
      SELECT gone.granted, next.waiter, (SELECT count(*) FROM notified) AS notified FROM gone LEFT JOIN next ON true`,
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
        AND NOT (waiting AND EXISTS (SELECT FROM ${queue} AS place WHERE name = expired.name AND ${placed('place')}))`,
    // In the order of their keys, not of the names: two calls with names whose 32-bit keys collide would
    // otherwise take them in opposite orders. PostgreSQL calls the volatile lock function after the sort.
    lockNames: `SELECT pg_advisory_xact_lock($1::int, key)
      FROM (SELECT DISTINCT hashtext(name) AS key FROM unnest($2::varchar[]) AS name) AS keys ORDER BY key`,
  };
}
