import type { AcquireRequest, AcquireResult, LockDialect, ReleaseRequest, ReleaseWaiting, RenewRequest, SetLocksRequest, SetLocksResult } from '../../lib/dialects/lock-dialect';
import type { LockRecord } from '../../lib/lock.entity';
import { sleep } from './lock-app';

/**
 * What happens to one call: held back before it reaches the database; done by the database but its
 * answer held back (a commit that was slow to report); failed before it reaches the database; or done
 * by the database and then failed after `ms`, so that its answer is lost.
 */
export type Fault =
  | { kind: 'delay'; ms: number }
  | { kind: 'late-answer'; ms: number }
  | { kind: 'fail-before'; error: DriverFailure }
  | { kind: 'fail-after'; error: DriverFailure; ms: number };

export type DriverFailure = 'timeout' | 'connection reset';

/** A call of the dialect, as the wrapper saw it. */
export interface DialectCall {
  index: number;
  method: string;
  /** The owner tokens the call would write: what a lock left behind by it would carry. */
  owners: string[];
  fault?: Fault;
  outcome?: 'resolved' | 'rejected';
}

/** An error shaped like the one a driver throws: the library cannot tell it from a real one. */
export function driverError(failure: DriverFailure): Error {
  if (failure === 'timeout') return Object.assign(new Error('Query read timeout'), { code: 'PROTOCOL_SEQUENCE_TIMEOUT' });
  return Object.assign(new Error('read ECONNRESET'), { code: 'ECONNRESET', errno: -104, syscall: 'read' });
}

/**
 * A `LockDialect` that passes every call to the real one, except the call whose index (counted from
 * the last `arm`) has a fault planned: that one is delayed or failed. A waiter's sleep counts as a call.
 */
export class FaultyDialect implements LockDialect {
  readonly calls: DialectCall[] = [];
  private faults = new Map<number, Fault>();
  private openSubscriptions = 0;

  constructor(private readonly dialect: LockDialect) {}

  /** Starts counting calls afresh, with `faults` by call index. */
  arm(faults: Map<number, Fault>): void {
    this.calls.length = 0;
    this.faults = faults;
  }

  /** Release subscriptions opened and not closed: waits in progress, or a leak once none are. */
  get subscriptions(): number {
    return this.openSubscriptions;
  }

  get maxNameLength(): number {
    return this.dialect.maxNameLength;
  }

  get announcesReleases(): boolean {
    return this.dialect.announcesReleases;
  }

  /** The store's own clock, where it keeps one (the in-memory store): passed through, never faulted. */
  get clock(): (() => number) | undefined {
    const { dialect } = this;
    return dialect.clock && (() => dialect.clock!());
  }

  ensureTable(): Promise<void> {
    return this.dialect.ensureTable();
  }

  inspectTable(): Promise<void> {
    return this.dialect.inspectTable();
  }

  /**
   * A failed attempt may come with the wait it began (PostgreSQL takes the caller's place in the same
   * statement): its sleeps are calls too. An answer lost on its way ends that wait, as the dialect does
   * when its statement fails.
   */
  async acquire(request: AcquireRequest): Promise<AcquireResult> {
    let began: ReleaseWaiting | undefined;
    const result = await this.call('acquire', [request.owner], async () => {
      const answer = await this.dialect.acquire(request);
      began = !answer.acquired ? answer.waiting : undefined;
      return answer;
    }, () => began?.close());
    return !result.acquired && result.waiting ? { ...result, waiting: this.watched(result.waiting) } : result;
  }

  release(request: ReleaseRequest): Promise<boolean> {
    return this.call('release', [], () => this.dialect.release(request));
  }

  renew(request: RenewRequest): Promise<LockRecord | null> {
    return this.call('renew', [], () => this.dialect.renew(request));
  }

  find(name: string): Promise<LockRecord | null> {
    return this.call('find', [], () => this.dialect.find(name));
  }

  list(): Promise<LockRecord[]> {
    return this.call('list', [], () => this.dialect.list());
  }

  deleteExpired(limit: number): Promise<number> {
    return this.call('deleteExpired', [], () => this.dialect.deleteExpired(limit));
  }

  setLocks(request: SetLocksRequest): Promise<SetLocksResult> {
    return this.call('setLocks', request.locks.map((lock) => lock.owner), () => this.dialect.setLocks(request));
  }

  subscribe(request: AcquireRequest): ReleaseWaiting {
    return this.watched(this.dialect.subscribe(request));
  }

  /** A wait whose sleeps are calls, counted until it closes. */
  private watched(waiting: ReleaseWaiting): ReleaseWaiting {
    this.openSubscriptions++;
    let closed = false;
    return {
      get place() {
        return waiting.place;
      },
      owner: waiting.owner,
      // A sleep may end with a lock handed over to the wait: its owner is the wait's.
      sleep: (timeoutMs, signal) => this.call('sleep', waiting.owner ? [waiting.owner] : [], () => waiting.sleep(timeoutMs, signal)),
      handedOver: waiting.handedOver && (() => waiting.handedOver!()),
      close: () => {
        if (!closed) this.openSubscriptions--;
        closed = true;
        waiting.close();
      },
    };
  }

  close(): Promise<void> {
    return this.dialect.close();
  }

  /** Runs a call with its fault; `lost` undoes what a call whose answer the fault loses left for its caller. */
  private async call<T>(method: string, owners: string[], run: () => Promise<T>, lost?: () => void): Promise<T> {
    const call: DialectCall = { index: this.calls.length, method, owners, fault: this.faults.get(this.calls.length) };
    this.calls.push(call);
    try {
      const result = await this.withFault(call.fault, run, lost);
      call.outcome = 'resolved';
      return result;
    } catch (error) {
      call.outcome = 'rejected';
      throw error;
    }
  }

  private async withFault<T>(fault: Fault | undefined, run: () => Promise<T>, lost?: () => void): Promise<T> {
    if (!fault) return run();
    if (fault.kind === 'fail-before') throw driverError(fault.error);
    if (fault.kind === 'delay') {
      await sleep(fault.ms);
      return run();
    }
    if (fault.kind === 'late-answer') {
      const result = await run();
      await sleep(fault.ms);
      return result;
    }
    await run().catch(() => undefined);
    await sleep(fault.ms);
    lost?.();
    throw driverError(fault.error);
  }
}
