import { loadDependencyOf } from '../optional-dependency';

/**
 * The metadata key under which `@Cron` of @nestjs/schedule stores its options (`SCHEDULE_CRON_OPTIONS`):
 * `{ cronTime, timeZone, utcOffset, … }`. The package is an optional peer, so its constant is not imported.
 */
const SCHEDULE_CRON_OPTIONS = 'SCHEDULE_CRON_OPTIONS';

/**
 * A timer may fire this many milliseconds before its fire time by the clock the tick is read from, and
 * still count for that tick. Kept far below the shortest period of a cron schedule (one second).
 */
const EARLY_TIMER_MS = 50;

/** How far back the latest fire time is looked for: a schedule that fired in none of these years cannot name a tick. */
const LONGEST_LOOKBACK_MS = 2 ** 29 * 1000;

/** What `@Cron` stores: the parts that decide its fire times. */
interface CronOptions {
  cronTime?: unknown;
  timeZone?: string | null;
  utcOffset?: number | string | null;
}

/** The part of `CronTime` of the `cron` package (a dependency of @nestjs/schedule) used here. */
interface CronTime {
  timeZone?: string;
  getNextDateFrom(start: Date, timeZone?: string): { toMillis(): number };
}

interface CronPackage {
  CronTime: new (source: string, timeZone?: string | null, utcOffset?: number | null) => CronTime;
}

/** One scheduled fire time of a cron schedule, in milliseconds since the epoch. */
export interface CronTick {
  /** The fire time: the identity of the tick. */
  at: number;
  /** The fire time that follows it: `next - at` is the tick's period. */
  next: number;
}

/** The schedules of the options objects `@Cron` stored, built once each. */
const schedules = new WeakMap<object, CronSchedule>();

/**
 * The fire times of a `@Cron` method, computed as @nestjs/schedule computes them (the `cron` package it
 * uses, with its time zone or UTC offset), so that every instance names a tick by the same instant.
 */
export class CronSchedule {
  /** The tick found last: calls in the same period, the usual case, need no computing. */
  private latest?: CronTick;

  private constructor(
    readonly expression: string,
    private readonly time: CronTime,
    private readonly zone: string | undefined,
  ) {}

  /**
   * The schedule of a method marked with `@Cron` and a cron expression; undefined for any other method,
   * and for `@Cron` given a single `Date` (it has no period to tell ticks apart).
   */
  static of(handler: object): CronSchedule | undefined {
    const options: CronOptions | undefined = Reflect.getMetadata(SCHEDULE_CRON_OPTIONS, handler);
    if (options === undefined || typeof options.cronTime !== 'string') return undefined;
    let schedule = schedules.get(options);
    if (!schedule) {
      schedule = CronSchedule.parse(options.cronTime, options.timeZone ?? undefined, options.utcOffset ?? undefined);
      schedules.set(options, schedule);
    }
    return schedule;
  }

  /** The schedule of a cron expression, in a time zone or at a UTC offset in minutes (as `@Cron` takes them). */
  static parse(expression: string, timeZone?: string, utcOffset?: number | string): CronSchedule {
    const cron = loadDependencyOf<CronPackage>('@nestjs/schedule', 'cron');
    if (!cron) throw new Error(`The @Cron schedule "${expression}" needs the "cron" package of @nestjs/schedule, which cannot be loaded.`);
    const offset = utcOffset === undefined ? undefined : Number(utcOffset);
    const time = new cron.CronTime(expression, timeZone ?? null, offset ?? null);
    return new CronSchedule(expression, time, offset === undefined ? time.timeZone : offsetZone(offset));
  }

  /**
   * The tick a call at `now` (milliseconds since the epoch, by the calling instance's clock) belongs to:
   * the latest fire time at or before it, or one that is at most `EARLY_TIMER_MS` ahead (a timer that
   * fired a little early). A call that comes late, by up to a period, still names the tick it was due for.
   */
  tickAt(now: number): CronTick {
    const at = now + EARLY_TIMER_MS;
    const latest = this.latest;
    if (latest && latest.at <= at) {
      if (at < latest.next) return latest;
      const following = this.nextAfter(latest.next);
      if (at < following) return (this.latest = { at: latest.next, next: following });
    }
    const tick = this.latestAtOrBefore(at);
    return (this.latest = { at: tick, next: this.nextAfter(tick) });
  }

  /** The first fire time after `time`. */
  private nextAfter(time: number): number {
    return this.time.getNextDateFrom(new Date(time), this.zone).toMillis();
  }

  /**
   * The latest fire time at or before `time`. The `cron` package only looks forward, so this looks back
   * from the whole second of `time` over windows that double until one holds a fire time, then halves
   * the window around the last one: two dozen steps or so for a yearly schedule, a few for a frequent one.
   * Fire times are whole seconds, and `nextAfter` never goes back as its start moves forward.
   */
  private latestAtOrBefore(time: number): number {
    const second = Math.floor(time / 1000) * 1000;
    let lookback = 1000;
    while (this.nextAfter(second - lookback) > time) {
      lookback *= 2;
      if (lookback > LONGEST_LOOKBACK_MS) {
        throw new RangeError(`The @Cron schedule "${this.expression}" has no fire time in the ${LONGEST_LOOKBACK_MS / 31_536_000_000 | 0} years before ${new Date(time).toISOString()}.`);
      }
    }
    // The next fire time after `before` is at or before `time`; after `after`, it is later.
    let before = second - lookback;
    let after = second;
    while (after - before > 1000) {
      const middle = before + Math.floor((after - before) / 2000) * 1000;
      if (this.nextAfter(middle) <= time) before = middle;
      else after = middle;
    }
    return this.nextAfter(before);
  }
}

/** The zone the `cron` package uses for a UTC offset in minutes, such as `UTC+05:30`. */
function offsetZone(minutes: number): string {
  const sign = minutes < 0 ? '-' : '+';
  const absolute = Math.abs(minutes);
  const pad = (value: number) => String(value).padStart(2, '0');
  return `UTC${sign}${pad(Math.trunc(absolute / 60))}:${pad(absolute % 60)}`;
}
