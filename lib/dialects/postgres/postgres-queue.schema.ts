import type { PostgresNames } from './postgres-names';

/** A live place, by the database's clock. */
export const PLACED = 'lapses_at > clock_timestamp()';

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
export function queueFunctions({ table, queue, placesAhead, handOff, served }: PostgresNames): Array<{ signature: string; body: string; definition: string }> {
  const functions = [
    {
      // Whether a live place of the name comes before the caller's `place` (none: after every place).
      name: placesAhead,
      parameters: 'lock_name varchar, place uuid',
      types: 'varchar, uuid',
      returns: 'boolean',
      body: `
      BEGIN
        RETURN EXISTS (SELECT FROM ${queue} AS ahead WHERE ahead.name = lock_name AND ahead.${PLACED}
          AND ahead.ticket < coalesce((SELECT own.ticket FROM ${queue} AS own WHERE own.waiter = place), ${Number.MAX_SAFE_INTEGER}));
      END
    `,
    },
    {
      // A release of a flagged row: the name keeps a free, flagged row for the first live place, whose
      // waiter's app alone is notified, on the channel it listens on (payload: the place); with no live
      // place, every waiter of the name is, on the table's channel (payload " <name>"), since one may
      // have flagged the row after its place was read. Resolves the first place, if any.
      name: handOff,
      parameters: 'lock_name varchar, broadcast_channel text',
      types: 'varchar, text',
      returns: 'uuid',
      body: `
      DECLARE
        first_place uuid;
        first_channel text;
      BEGIN
        SELECT waiter, channel INTO first_place, first_channel FROM ${queue} AS place
          WHERE name = lock_name AND ${PLACED} ORDER BY ticket LIMIT 1;
        IF first_place IS NOT NULL THEN
          INSERT INTO ${table} ${FREE_ROW} VALUES (lock_name, ${FREE_ROW_VALUES});
        END IF;
        IF broadcast_channel IS NULL THEN
          NULL;
        ELSIF first_place IS NULL THEN
          PERFORM pg_notify(broadcast_channel, ' ' || lock_name);
        ELSIF first_channel IS NOT NULL THEN
          PERFORM pg_notify(first_channel, first_place::text);
        END IF;
        RETURN first_place;
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
      lapses_at timestamp with time zone NOT NULL,
      channel text
    )`,
    // A queue made before places named their app's channel.
    `ALTER TABLE ${names.queue} ADD COLUMN IF NOT EXISTS channel text`,
    `CREATE INDEX IF NOT EXISTS "${names.queueIndex}" ON ${names.queue} (name, ticket)`,
    ...queueFunctions(names).map(({ definition }) => definition),
  ];
}

/** What the migration's `down` drops of the queue, which is nestjs-lockmgr's alone, whoever made the lock table. */
export function queueRevertStatements(names: PostgresNames): string[] {
  return [`DROP TABLE IF EXISTS ${names.queue}`, ...queueFunctions(names).map(({ signature }) => `DROP FUNCTION IF EXISTS ${signature}`)];
}
