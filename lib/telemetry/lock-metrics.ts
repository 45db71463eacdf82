import type { Attributes, Counter, Histogram, Meter, ObservableResult, ObservableUpDownCounter } from '@opentelemetry/api';
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import {
  ACQUISITION_ENDED_CHANNEL,
  AcquisitionEndedMessage,
  LOCKMGR_CHANNELS,
  LockAcquiredMessage,
  LockLostMessage,
  LockReleasedMessage,
  LockRenewedMessage,
  LockSkippedMessage,
} from '../lock-events';
import { HeldLocks } from './held-locks';

/** The name of the meter every instrument is created on. */
export const LOCKMGR_METER = 'nestjs-lockmgr';

/** The attribute naming the lock table; lock names are never attributes (there is no bound to them). */
const TABLE_ATTRIBUTE = 'lockmgr.table';

/** From a round trip on a local database to a wait of minutes. */
const ACQUIRE_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300];
/** From a lock let go at once to a job of hours. */
const HOLD_BUCKETS = [0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 900, 1800, 3600, 7200, 21600];

interface LockTable {
  /** How many modules of this process record this table: it is forgotten when the last one stops. */
  modules: number;
  held: HeldLocks;
  attributes: Attributes;
}

type Handlers = { [channel: string]: (message: never) => void };

/**
 * @internal The instruments of the meter `nestjs-lockmgr`, fed by the lock event channels. One per
 * process, whatever the number of lock modules: each event is recorded once, under the table it names,
 * and only for the tables of modules that record metrics.
 */
class LockMetrics {
  readonly tables = new Map<string, LockTable>();
  private readonly acquireDuration: Histogram;
  private readonly holdDuration: Histogram;
  private readonly held: ObservableUpDownCounter;
  private readonly lost: Counter;
  private readonly skipped: Counter;
  private readonly handlers: Handlers;

  constructor(meter: Meter) {
    this.acquireDuration = meter.createHistogram('lockmgr.acquire.duration', {
      unit: 's',
      description: 'How long each call that takes a lock took, waits included, by outcome: acquired, locked (held elsewhere) or error.',
      advice: { explicitBucketBoundaries: ACQUIRE_BUCKETS },
    });
    this.holdDuration = meter.createHistogram('lockmgr.hold.duration', {
      unit: 's',
      description: 'How long a lock taken by this process was held, recorded when it is released or lost.',
      advice: { explicitBucketBoundaries: HOLD_BUCKETS },
    });
    this.held = meter.createObservableUpDownCounter('lockmgr.held', {
      unit: '{lock}',
      description: 'Locks held through this process now: taken and not yet released, lost or run out.',
    });
    this.lost = meter.createCounter('lockmgr.lost', {
      unit: '{lock}',
      description: 'Locks of managers, withLock and @WithLock found lost while held: force-released elsewhere, or not renewed in time.',
    });
    this.skipped = meter.createCounter('lockmgr.skipped', {
      unit: '{run}',
      description: 'Runs of @WithLock methods skipped because their lock was held elsewhere.',
    });
    this.handlers = {
      [ACQUISITION_ENDED_CHANNEL]: (message: AcquisitionEndedMessage) =>
        this.on(message, (table) => this.acquireDuration.record(message.seconds, { ...table.attributes, outcome: message.outcome })),
      [LOCKMGR_CHANNELS.acquired]: (message: LockAcquiredMessage) => this.on(message, (table) => table.held.taken(message)),
      [LOCKMGR_CHANNELS.renewed]: (message: LockRenewedMessage) => this.on(message, (table) => table.held.renewed(message)),
      [LOCKMGR_CHANNELS.released]: (message: LockReleasedMessage) =>
        this.on(message, (table) => this.letGo(table, message.name, message.fencingToken)),
      [LOCKMGR_CHANNELS.lost]: (message: LockLostMessage) =>
        this.on(message, (table) => {
          this.lost.add(1, table.attributes);
          this.letGo(table, message.name, message.fencingToken);
        }),
      [LOCKMGR_CHANNELS.skipped]: (message: LockSkippedMessage) => this.on(message, (table) => this.skipped.add(1, table.attributes)),
    };
  }

  start(): void {
    for (const [channel, handler] of Object.entries(this.handlers)) subscribe(channel, handler as (message: unknown) => void);
    this.held.addCallback(this.observeHeld);
  }

  stop(): void {
    for (const [channel, handler] of Object.entries(this.handlers)) unsubscribe(channel, handler as (message: unknown) => void);
    this.held.removeCallback(this.observeHeld);
  }

  private readonly observeHeld = (result: ObservableResult): void => {
    for (const table of this.tables.values()) result.observe(table.held.count(), table.attributes);
  };

  private on(message: { table: string }, record: (table: LockTable) => void): void {
    const table = this.tables.get(message.table);
    if (table) record(table);
  }

  private letGo(table: LockTable, name: string, fencingToken: number | null): void {
    const seconds = table.held.letGo(name, fencingToken);
    if (seconds !== null) this.holdDuration.record(seconds, table.attributes);
  }
}

let metrics: LockMetrics | undefined;

/**
 * @internal Records the metrics of the lock table `tableName` until the returned function is called.
 * The instruments are made on `meter` when the first table starts and dropped with the last one, so
 * an app started later under another meter provider records on that one.
 */
export function recordLockMetrics(meter: Meter, tableName: string, elapsed: () => number): () => void {
  if (!metrics) {
    metrics = new LockMetrics(meter);
    metrics.start();
  }
  const { tables } = metrics;
  const table = tables.get(tableName) ?? { modules: 0, held: new HeldLocks(elapsed), attributes: { [TABLE_ATTRIBUTE]: tableName } };
  table.modules++;
  tables.set(tableName, table);
  let stopped = false;
  return () => {
    if (stopped) return;
    stopped = true;
    if (--table.modules > 0) return;
    tables.delete(tableName);
    if (tables.size > 0) return;
    metrics?.stop();
    metrics = undefined;
  };
}
