/**
 * Two designs of a fair hand-off on PostgreSQL, written with `pg` alone so that they can be measured
 * before the library settles on one. Waiters of a name take tickets in a queue and are served in
 * ticket order; a release wakes only the first live waiter.
 *
 * - Design A, addressed notify: the release deletes the row and NOTIFYs the first waiter's ticket;
 *   that waiter then takes the lock with an attempt of its own.
 * - Design B, hand-over: the release gives the row to the first waiter in its own transaction and
 *   NOTIFYs the waiter, which holds the lock without a further statement.
 * - Design C, B with a hand-over that does not wait for the disk: the waiter's lease ends no later than
 *   the released one, so a crash that loses the hand-over leaves a row that still covers the waiter.
 *   It is measured as the most that lever can give, not as a candidate: a token drawn by a hand-over
 *   lost in a crash can be drawn again after it, so fencing tokens could go back.
 *
 * In each, a notice for one waiter goes to the channel of its process (`OWN_CHANNEL`, recorded with its
 * place), so that only that process wakes, as in the library; a notice for every waiter of a name goes
 * to the design's channel, which every process LISTENs on.
 *
 * Every call is one prepared statement on the database's clock.
 */
import type { Client } from 'pg';

export type Design = 'A' | 'B' | 'C';
export const DESIGNS: Design[] = ['A', 'B', 'C'];

/** Whether a release of the design gives the lock to the first waiter itself. */
export const handsOver = (design: Design) => design !== 'A';

const LOCK_TABLE = 'bench_design_lock';
const QUEUE_TABLE = 'bench_design_queue';
const TOKENS = 'bench_design_token';

/** Seconds a lock is held for when it is not released. */
const LEASE_SECONDS = 60;
/** Seconds a place in the queue stays live without a heartbeat; every attempt of its waiter renews it. */
const PLACE_SECONDS = 5;

export const channelOf = (design: Design) => `bench_design_${design.toLowerCase()}`;

/** The channel on which this process hears the notices addressed to its waiters. */
export const OWN_CHANNEL = `bench_design_process_${process.pid}`;

/** The payload that wakes every waiter of a name, when a release cannot tell which of them is first. */
export const wakeAll = (name: string) => `* ${name}`;

export const CREATE_TABLES = [
  // `waiting` tells a release that a waiter may be queued though its snapshot does not show the place yet.
  `CREATE TABLE ${LOCK_TABLE} (name varchar(255) PRIMARY KEY, owner varchar(64), fencing_token bigint,
    locked_until timestamptz, waiting boolean NOT NULL DEFAULT false)`,
  `CREATE SEQUENCE ${TOKENS}`,
  `CREATE TABLE ${QUEUE_TABLE} (ticket bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, name varchar(255) NOT NULL,
    owner varchar(64) NOT NULL, lapses_at timestamptz NOT NULL, channel text NOT NULL)`,
  `CREATE INDEX ${QUEUE_TABLE}_name ON ${QUEUE_TABLE} (name, ticket)`,
];
export const DROP_TABLES = [`DROP TABLE IF EXISTS ${LOCK_TABLE}, ${QUEUE_TABLE}`, `DROP SEQUENCE IF EXISTS ${TOKENS}`];

const FIRST_PLACE = `SELECT ticket, owner, channel FROM ${QUEUE_TABLE}
  WHERE name = $1::varchar AND lapses_at > clock_timestamp() ORDER BY ticket LIMIT 1`;

/**
 * The same attempt in both designs. It takes the lock when no live row holds it and no live place
 * comes before the caller's; otherwise the caller gets a place, or renews the one it has.
 *
 * An attempt and a release that run at once each miss what the other has not committed, so a release
 * can overlook a place that has just been taken. Its waiter would sleep until its safety timeout, and
 * every waiter behind it with it. The caller sleeps only once it knows that some release will see its
 * place (`sleeps`); otherwise it tries again at once:
 * - The row's `waiting` flag, which a release reads from the row it deletes or hands over, so from
 *   the newest version, even when that came after its snapshot. The flag stays on the row through
 *   takeovers and hand-overs, and a free row that bears it is kept (`locked_until` at -infinity), until a
 *   release that sees no live place clears it by waking every waiter of the name. The caller sets it on
 *   the row it saw, unless it saw it set: an update that finds that row gone (a release deleted it
 *   meanwhile) tells the caller to try again.
 * - With no row at all, the first live place ahead takes the lock next; the caller holds a share lock
 *   on that place, which the taker must delete, so the taker's release comes after the caller's place.
 *   A place gone meanwhile tells the caller to try again.
 *
 * $1 name, $2 owner, $3 the caller's ticket or null, $4 lease seconds, $5 place seconds, $6 the caller's process's channel.
 */
const ATTEMPT = `WITH current AS (
    SELECT owner, fencing_token, waiting, locked_until > clock_timestamp() AS live FROM ${LOCK_TABLE} WHERE name = $1::varchar
  ), ahead AS (
    SELECT FROM ${QUEUE_TABLE} WHERE name = $1 AND lapses_at > clock_timestamp() AND ($3::bigint IS NULL OR ticket < $3) LIMIT 1
  ), free AS (
    SELECT WHERE NOT EXISTS (SELECT FROM current WHERE live) AND NOT EXISTS (SELECT FROM ahead)
  ), taken AS (
    INSERT INTO ${LOCK_TABLE} AS held (name, owner, fencing_token, locked_until)
    SELECT $1, $2::varchar, nextval('${TOKENS}'), clock_timestamp() + $4::float8 * interval '1 second' FROM free
    ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, fencing_token = excluded.fencing_token, locked_until = excluded.locked_until
    WHERE held.locked_until <= clock_timestamp()
    RETURNING fencing_token
  ), served AS (
    DELETE FROM ${QUEUE_TABLE} WHERE ticket = $3 AND EXISTS (SELECT FROM taken)
  ), mine AS (
    -- Handed to the caller by a release of design B whose notification the caller has not yet read.
    SELECT fencing_token FROM current WHERE live AND owner = $2
  ), queued AS (
    SELECT WHERE NOT EXISTS (SELECT FROM free) AND NOT EXISTS (SELECT FROM mine)
  ), flagged AS (
    UPDATE ${LOCK_TABLE} SET waiting = true
    WHERE name = $1 AND EXISTS (SELECT FROM queued) AND EXISTS (SELECT FROM current WHERE NOT waiting)
    RETURNING true
  ), behind AS (
    SELECT FROM ${QUEUE_TABLE}
    WHERE name = $1 AND lapses_at > clock_timestamp() AND ($3 IS NULL OR ticket < $3)
      AND EXISTS (SELECT FROM queued) AND NOT EXISTS (SELECT FROM current)
    ORDER BY ticket LIMIT 1 FOR KEY SHARE
  ), placed AS (
    INSERT INTO ${QUEUE_TABLE} (name, owner, lapses_at, channel)
    SELECT $1, $2, clock_timestamp() + $5::float8 * interval '1 second', $6::text FROM queued WHERE $3 IS NULL
    RETURNING ticket
  ), renewed AS (
    UPDATE ${QUEUE_TABLE} SET lapses_at = clock_timestamp() + $5 * interval '1 second'
    WHERE ticket = $3 AND lapses_at > clock_timestamp() AND EXISTS (SELECT FROM queued)
      -- After the flag, so that the row is locked before the place, in the order a release locks them.
      AND (SELECT count(*) FROM flagged) >= 0
    RETURNING ticket
  ), place AS (
    SELECT coalesce((SELECT ticket FROM placed), (SELECT ticket FROM renewed)) AS ticket
  )
  SELECT coalesce((SELECT fencing_token FROM taken), (SELECT fencing_token FROM mine)) AS token,
    CASE WHEN EXISTS (SELECT FROM queued) THEN place.ticket ELSE $3 END AS ticket,
    place.ticket IS NOT NULL
      AND (EXISTS (SELECT FROM current WHERE waiting) OR EXISTS (SELECT FROM flagged) OR EXISTS (SELECT FROM behind)) AS sleeps,
    -- Only a lock taken must reach the disk before it is reported; a place lost in a crash costs a wake-up.
    set_config('synchronous_commit', CASE WHEN EXISTS (SELECT FROM taken) THEN current_setting('synchronous_commit') ELSE 'off' END, true)
  FROM place`;

/**
 * Design A's release. A row that the flag says may have waiters the snapshot misses is kept, free and
 * flagged, as long as a waiter is to take it. It does not wait for the disk: a release lost in a crash
 * only keeps the lock until its lease ends. $1 name, $2 owner, $3 channel, $4 the payload that wakes all.
 */
const RELEASE_A = `WITH released AS (
    DELETE FROM ${LOCK_TABLE} WHERE name = $1::varchar AND owner = $2::varchar RETURNING waiting
  ), first AS (${FIRST_PLACE}
  ), kept AS (
    INSERT INTO ${LOCK_TABLE} (name, locked_until, waiting)
    SELECT $1, '-infinity'::timestamptz, true FROM released WHERE waiting AND EXISTS (SELECT FROM first)
  ), notified AS (
    SELECT pg_notify(channel, ticket::text) FROM first WHERE EXISTS (SELECT FROM released)
    UNION ALL
    SELECT pg_notify($3::text, $4::text) FROM released WHERE waiting AND NOT EXISTS (SELECT FROM first)
  )
  SELECT count(*)::int AS released, (SELECT count(*) FROM notified), set_config('synchronous_commit', 'off', true)
  FROM released`;

/**
 * The release of designs B and C: the first live waiter gets the row, with a new fencing token, in the
 * release's own transaction. In B, with a whole lease, so the transaction must reach the disk before
 * the waiter is told; in C, with a lease that ends no later than the released one, without waiting.
 * $1 name, $2 owner, $3 channel, $4 the payload that wakes all, $5 lease seconds.
 */
function handOverRelease(durable: boolean): string {
  const lease = `clock_timestamp() + $5::float8 * interval '1 second'`;
  return `WITH first AS (${FIRST_PLACE}
  ), handed AS (
    UPDATE ${LOCK_TABLE} AS held SET owner = first.owner, fencing_token = nextval('${TOKENS}'),
      locked_until = ${durable ? lease : `least(held.locked_until, ${lease})`}
    FROM first WHERE held.name = $1 AND held.owner = $2::varchar
    RETURNING first.ticket, held.fencing_token, first.channel
  ), served AS (
    DELETE FROM ${QUEUE_TABLE} WHERE ticket = (SELECT ticket FROM handed)
  ), released AS (
    DELETE FROM ${LOCK_TABLE} WHERE name = $1 AND owner = $2 AND NOT EXISTS (SELECT FROM first) RETURNING waiting
  ), notified AS (
    SELECT pg_notify(channel, ticket || ' ' || fencing_token) FROM handed
    UNION ALL
    SELECT pg_notify($3::text, $4::text) FROM released WHERE waiting
  )
  SELECT (SELECT count(*) FROM handed)::int + (SELECT count(*) FROM released)::int AS released, (SELECT count(*) FROM notified),
    set_config('synchronous_commit', CASE WHEN ${durable} AND EXISTS (SELECT FROM handed) THEN current_setting('synchronous_commit') ELSE 'off' END, true)`;
}

/** Each design's release, built once. */
const RELEASES: Record<Design, string> = { A: RELEASE_A, B: handOverRelease(true), C: handOverRelease(false) };

/** What an attempt found: the lock held (its fencing token), or the caller's place in the queue. */
export interface Attempt {
  token: string | null;
  /** The caller's place, null once it has none (it lapsed, or design B handed the lock over meanwhile). */
  ticket: string | null;
  /** Whether some release is sure to see the place and wake the caller; otherwise it tries again at once. */
  sleeps: boolean;
}

/** One connection's calls of one design. */
export class DesignLock {
  constructor(
    private readonly client: Client,
    readonly design: Design,
  ) {}

  async attempt(name: string, owner: string, ticket: string | null): Promise<Attempt> {
    const { rows } = await this.client.query<Attempt>({
      name: 'design-attempt',
      text: ATTEMPT,
      values: [name, owner, ticket, LEASE_SECONDS, PLACE_SECONDS, OWN_CHANNEL],
    });
    return rows[0];
  }

  async release(name: string, owner: string): Promise<void> {
    const values = [name, owner, channelOf(this.design), wakeAll(name)];
    const { rows } = await this.client.query({
      name: `design-${this.design.toLowerCase()}-release`,
      text: RELEASES[this.design],
      values: handsOver(this.design) ? [...values, LEASE_SECONDS] : values,
    });
    if (rows[0]?.released !== 1) throw new Error(`Design ${this.design} found ${name} not held by ${owner} at its release.`);
  }
}
