import { drawFencingToken } from './postgres-fencing-token';
import type { PostgresNames } from './postgres-names';

/** A live lock, by the database's clock. */
export const LIVE = '(locked_until IS NULL OR locked_until > clock_timestamp())';

/** A live place still waiting, by the database's clock (of the queue row `alias`, if given). A granted place waits no more. */
export function placed(alias?: string): string {
  const column = alias ? `${alias}.` : '';
  return `(${column}lapses_at > clock_timestamp() AND NOT ${column}granted)`;
}

/**
 * How recently a place must have been renewed to be handed the lock, in seconds before it lapses: its
 * process renewed it within the last second (renewals come every half second), so it was not frozen.
 */
const HAND_OVER_FRESHNESS = 1;

/**
 * The columns and values (after the name) of the free, flagged row that a name keeps while waiters have
 * places: expired since 1970, so every operation takes it as absent and any acquisition may take it
 * over once the queue lets it, with an owner and a token that no acquisition has (a token of 0 would
 * have the trigger draw one).
 */
export const FREE_ROW = '(name, owner, locked_until, created_at, updated_at, fencing_token, waiting)';
export const FREE_ROW_VALUES = "'', 'epoch', clock_timestamp(), clock_timestamp(), -1, true";

/**
 * The functions behind the queue of waiters, called only for a name whose row is flagged (a waiter
 * has a place): in a function, the queue adds nothing to the plan of an acquisition or a release
 * that meets no waiter, where it would cost every lock operation some of its throughput. Each is
 * volatile, so its statements see what committed after the calling statement began.
 */
export function queueFunctions({ table, sequence, queue, placesAhead, takePlace, handOver, served }: PostgresNames): Array<{ signature: string; body: string; definition: string }> {
  // Whether the row read or flagged by `takePlace` is held, and the seconds left of its lease.
  const heldFor = `${LIVE}, EXTRACT(EPOCH FROM locked_until - clock_timestamp())::float8`;
  const functions = [
    {
      // Whether a live place of the name comes before the caller's `place` (none: after every place).
      name: placesAhead,
      parameters: 'lock_name varchar, place uuid',
      types: 'varchar, uuid',
      returns: 'boolean',
      body: `
      BEGIN
        RETURN EXISTS (SELECT FROM ${queue} AS ahead WHERE ahead.name = lock_name AND ${placed('ahead')}
          AND ahead.ticket < coalesce((SELECT own.ticket FROM ${queue} AS own WHERE own.waiter = place), ${Number.MAX_SAFE_INTEGER}));
      END
    `,
    },
    {
      // A waiter takes its place at the end of the queue (or renews it: the waiter names its place, so a
      // place whose answer was lost is found again), and flags the name's row, making a free, flagged one
      // if there is none. The app already LISTENs, on `listen_channel` (null: it cannot), in the session
      // `listener_pid` started at `listener_start`; `place_owner` to `lease` make the lock a release may
      // hand over to the place.
      // A row not yet flagged is flagged under its row lock (then the place is taken, in the order a
      // release locks them): the upsert meets the newest version, so it sees what any release or
      // acquisition committed before it, and those after it see the flag. A row already flagged is only
      // read, so that waiters do not queue up behind the holder's release for its row lock: a release
      // that deletes it before the place commits sees the flag but may miss the place, and then either
      // serves a place ahead of it or, finding none, notifies every waiter of the name, this one too.
      // It answers whether the row is held (with its lease), whether the place was handed the lock already
      // (it is never taken again then), and whether live places come before it. Losing a flag or a place in
      // a crash only costs a NOTIFY (the waiter still polls), so the transaction does not wait for the disk.
      name: takePlace,
      parameters: `lock_name varchar, place uuid, lapse float8, listen_channel text, place_owner text, holder text,
        holder_process integer, lease float8, listener_pid integer, listener_start timestamptz,
        OUT held boolean, OUT seconds_left float8, OUT granted boolean, OUT queued boolean`,
      types: 'varchar, uuid, float8, text, text, text, integer, float8, integer, timestamptz',
      returns: 'record',
      body: `
      DECLARE
        own_ticket bigint;
        flagged boolean;
      BEGIN
        SELECT ${heldFor}, waiting INTO held, seconds_left, flagged
          FROM ${table} WHERE name = lock_name;
        IF flagged IS NOT TRUE THEN
          INSERT INTO ${table} ${FREE_ROW} VALUES (lock_name, ${FREE_ROW_VALUES})
            ON CONFLICT (name) DO UPDATE SET waiting = true
            RETURNING ${heldFor} INTO held, seconds_left;
        END IF;
        INSERT INTO ${queue} AS own (waiter, name, lapses_at, channel, owner, locked_by, lock_process, expires, listener, listener_started)
          VALUES (place, lock_name, clock_timestamp() + lapse * interval '1 second', listen_channel, place_owner, holder,
            holder_process, lease, listener_pid, listener_start)
          ON CONFLICT (waiter) DO UPDATE SET lapses_at = excluded.lapses_at, channel = excluded.channel,
            listener = excluded.listener, listener_started = excluded.listener_started
          WHERE NOT own.granted
          RETURNING ticket INTO own_ticket;
        granted := own_ticket IS NULL;
        queued := EXISTS (SELECT FROM ${queue} AS ahead WHERE ahead.name = lock_name AND ahead.ticket < own_ticket AND ${placed('ahead')});
        PERFORM set_config('synchronous_commit', 'off', true);
      END
    `,
    },
    {
      // A release of a flagged row hands the lock over to the first live place, in this transaction, when
      // its app is alive and listening: its listener's session is idle after LISTEN (the same session:
      // same pid and start), and the place was renewed within the last second. The place is marked
      // granted, not deleted, so that a waiter leaving at the same time finds it granted and releases
      // the lock (see `leave`); the notice carries the lock (place, token, expiry and start in epoch
      // seconds), and so does the result, for a waiter of the releasing app. Otherwise the name keeps a
      // free, flagged row for that place, whose app alone is notified (payload: the place), and takes
      // the lock itself; with no live place, every waiter of the name is, on the table's channel
      // (payload " <name>"), since one may have flagged the row after its place was read.
      name: handOver,
      parameters: 'lock_name varchar, broadcast_channel text, released_owner varchar',
      types: 'varchar, text, varchar',
      returns: 'text',
      body: `
      DECLARE
        first ${queue}%ROWTYPE;
        lock_row record;
        grant_notice text;
      BEGIN
        -- The place of a lock handed over goes with its release (the lock is flagged, so that its release
        -- comes here), so that places granted long ago never pile up ahead of the live ones (one its
        -- waiter left went then; one whose lock expired lapses).
        DELETE FROM ${queue} WHERE name = lock_name AND granted AND owner = released_owner;
        SELECT * INTO first FROM ${queue} AS place WHERE name = lock_name AND ${placed('place')} ORDER BY ticket LIMIT 1;
        IF broadcast_channel IS NOT NULL AND first.owner IS NOT NULL AND first.channel IS NOT NULL
          AND first.lapses_at > clock_timestamp() + interval '${HAND_OVER_FRESHNESS} second'
          AND EXISTS (SELECT FROM pg_stat_get_activity(first.listener) AS session WHERE session.state = 'idle'
            AND session.query LIKE 'LISTEN%' AND session.backend_start = first.listener_started) THEN
          UPDATE ${queue} SET granted = true WHERE waiter = first.waiter AND ${placed()};
          IF FOUND THEN
            INSERT INTO ${table} (name, owner, locked_by, lock_process, locked_until, created_at, updated_at, fencing_token, waiting)
              SELECT lock_name, first.owner, first.locked_by, first.lock_process, at + first.expires * interval '1 second', at, at,
                ${drawFencingToken(sequence)}, true
              FROM clock_timestamp() AS at
              RETURNING fencing_token, locked_until, created_at INTO lock_row;
            grant_notice := concat_ws(' ', first.waiter, lock_row.fencing_token,
              coalesce(extract(epoch FROM lock_row.locked_until)::text, ''), extract(epoch FROM lock_row.created_at));
            PERFORM pg_notify(first.channel, grant_notice);
            RETURN grant_notice;
          END IF;
          -- The place left meanwhile: the next one is served as below.
          SELECT * INTO first FROM ${queue} AS place WHERE name = lock_name AND ${placed('place')} ORDER BY ticket LIMIT 1;
        END IF;
        IF first.waiter IS NOT NULL THEN
          INSERT INTO ${table} ${FREE_ROW} VALUES (lock_name, ${FREE_ROW_VALUES});
        END IF;
        IF broadcast_channel IS NULL THEN
          NULL;
        ELSIF first.waiter IS NULL THEN
          PERFORM pg_notify(broadcast_channel, ' ' || lock_name);
        ELSIF first.channel IS NOT NULL THEN
          PERFORM pg_notify(first.channel, first.waiter::text);
        END IF;
        RETURN first.waiter::text;
      END
    `,
    },
    {
      // The waiter of `place` took the lock: its place goes.
      name: served,
      parameters: 'place uuid',
      types: 'uuid',
      returns: 'boolean',
      body: `
      BEGIN
        DELETE FROM ${queue} WHERE waiter = place;
        RETURN FOUND;
      END
    `,
    },
  ];
  return functions.map(({ name, parameters, types, returns, body }) => ({
    signature: `${name}(${types})`,
    body,
    definition: `CREATE OR REPLACE FUNCTION ${name}(${parameters}) RETURNS ${returns} LANGUAGE plpgsql AS $queue$${body}$queue$`,
  }));
}

/**
 * The queue of waiters: one row per waiting call, its place named by the call's own id, with the
 * channel its app listens on for the notice of its turn (none while the app cannot listen). Places only
 * matter while their waiters live: a crash or a failover that loses them costs their order, never a
 * lock (waiters take new places), so they are not written to the log.
 */
export function queueStatements(names: PostgresNames): string[] {
  return [
    `CREATE UNLOGGED TABLE IF NOT EXISTS ${names.queue} (
      waiter uuid PRIMARY KEY,
      ticket bigint NOT NULL GENERATED ALWAYS AS IDENTITY,
      name text NOT NULL,
      lapses_at timestamp with time zone NOT NULL
    )`,
    // The other columns, added apart so that a queue made by an earlier build gains them too: the channel of the place's app;
    // what a lock handed over to the place is made of (its owner token, holder, process and lease in
    // seconds, null: none); the session of the app's listener (pid and start); and whether it was handed the lock.
    `ALTER TABLE ${names.queue} ADD COLUMN IF NOT EXISTS channel text, ADD COLUMN IF NOT EXISTS owner text,
      ADD COLUMN IF NOT EXISTS locked_by text, ADD COLUMN IF NOT EXISTS lock_process integer,
      ADD COLUMN IF NOT EXISTS expires float8, ADD COLUMN IF NOT EXISTS listener integer,
      ADD COLUMN IF NOT EXISTS listener_started timestamp with time zone, ADD COLUMN IF NOT EXISTS granted boolean NOT NULL DEFAULT false`,
    `CREATE INDEX IF NOT EXISTS "${names.queueIndex}" ON ${names.queue} (name, ticket)`,
    `DROP FUNCTION IF EXISTS ${names.earlierHandOff}(varchar, text)`,
    ...queueFunctions(names).map(({ definition }) => definition),
  ];
}

/** What the migration's `down` drops of the queue, which is nestjs-lockmgr's alone, whoever made the lock table. */
export function queueRevertStatements(names: PostgresNames): string[] {
  return [
    `DROP TABLE IF EXISTS ${names.queue}`,
    ...queueFunctions(names).map(({ signature }) => `DROP FUNCTION IF EXISTS ${signature}`),
    `DROP FUNCTION IF EXISTS ${names.earlierHandOff}(varchar, text)`,
  ];
}
