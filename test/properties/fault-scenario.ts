import { LockDatabaseError, LockEntity, LockManager, LockService } from '../../lib';
import type { FaultyDialect } from '../support/faulty-dialect';
import { LockApp, sleep } from '../support/lock-app';
import { FAULT_NAMES, FaultStep, PlannedFault, SHORT_LEASE } from './fault-steps';

/** How long a failed call may take to clean up after itself before a lock it left counts as left behind. */
const SETTLE_MS = 3000;
/** A holder must be told it lost its lock at least this long before its lease ends, to stop its work in time. */
const TOLD_BEFORE_MS = 100;
/** How often another instance tries to take a lock a manager holds. */
const PROBE_EVERY_MS = 150;
const LONG_LEASE = 30;

/** A lock the faulty app's caller was told it holds, and whether it still believes so. */
interface Belief {
  name: string;
  what: string;
  holds: () => boolean;
}

type Attempt<T> = { value: T } | { error: unknown };

/**
 * Runs the steps of a fault case on the app whose dialect is faulty, while a healthy app stands for
 * the other instances, and throws at the first broken invariant: two holders at once, a lock left
 * behind for a caller told its call failed, a holder told too late that it lost its lock, a wait that
 * gave up on one failed call, or a wait whose subscription to releases was left open.
 */
export class FaultScenario {
  private beliefs: Belief[] = [];
  private readonly managers: LockManager[] = [];

  constructor(
    private readonly faulty: LockService,
    private readonly dialect: FaultyDialect,
    /** Another instance of the app, on a healthy dialect. */
    private readonly observer: LockApp,
    private readonly prefix: string,
    private readonly planned: PlannedFault,
  ) {}

  private lockName(name: string): string {
    return `${this.prefix}${name}`;
  }

  async run(step: FaultStep): Promise<void> {
    const what = JSON.stringify(step);
    switch (step.step) {
      case 'getLock':
        await this.getLock(this.lockName(step.name), step.contended, what);
        break;
      case 'manager':
        await this.holdManager(this.lockName(step.name), step.holdMs, what);
        break;
      case 'setLock': {
        const names = step.names.map((name) => this.lockName(name));
        const outcome = await this.attempt(what, () => this.faulty.setLock(names, { timeout: LONG_LEASE, fail: step.fail }));
        if ('value' in outcome) for (const lock of outcome.value.locks) this.believeHandle(lock, what);
        break;
      }
      case 'renew':
      case 'release': {
        const taken = await this.attempt(what, () => this.faulty.getLock(this.lockName(step.name), { expires: LONG_LEASE }));
        if (!('value' in taken)) break;
        const belief = this.believeHandle(taken.value, what);
        if (step.step === 'release') {
          this.beliefs = this.beliefs.filter((other) => other !== belief);
          await this.attempt(what, () => this.faulty.unlock(taken.value));
          break;
        }
        const renewed = await this.attempt(what, () => this.faulty.renewLock(taken.value, { expires: LONG_LEASE }));
        if ('value' in renewed) this.believeHandle(renewed.value, what);
        break;
      }
    }
    if (this.dialect.subscriptions !== 0) throw new Error(`${what} left ${this.dialect.subscriptions} subscription(s) to releases open`);
    for (const name of FAULT_NAMES) await this.probe(this.lockName(name), `after ${what}`);
  }

  /** Runs a call of the faulty app; if it rejects, no lock its acquisitions wrote may stay behind. */
  private async attempt<T>(what: string, call: () => Promise<T>): Promise<Attempt<T>> {
    const firstCall = this.dialect.calls.length;
    try {
      return { value: await call() };
    } catch (error) {
      const owners = this.dialect.calls.slice(firstCall).flatMap((dialectCall) => dialectCall.owners);
      await this.noLockLeftFor(owners, `${what}, told ${error instanceof Error ? error.name : 'failed'}`);
      return { error };
    }
  }

  private async noLockLeftFor(owners: string[], what: string): Promise<void> {
    const giveUpAt = performance.now() + SETTLE_MS;
    for (;;) {
      // Owner tokens are read from the table: the service lists locks without them.
      const left = (await this.observer.dialect.list()).filter((lock) => owners.includes(lock.owner));
      if (left.length === 0) return;
      if (performance.now() > giveUpAt) {
        const locks = left.map((lock) => `"${lock.name}" (token ${lock.fencingToken}, ${lock.secondsLeft?.toFixed(1)} s left)`);
        throw new Error(`${what}: ${SETTLE_MS} ms later it still holds ${locks.join(', ')}, which nobody owns`);
      }
      await sleep(100);
    }
  }

  /** Another instance takes `name` if it can; then no caller of the faulty app may still believe it holds it. */
  private async probe(name: string, what: string): Promise<void> {
    const lock = await this.observer.locks.tryLock(name, { expires: 5 });
    if (!lock) return;
    const believers = this.beliefs.filter((belief) => belief.name === name && belief.holds());
    await this.observer.locks.unlock(lock);
    if (believers.length > 0) {
      throw new Error(`${what}: another instance took "${name}" (token ${lock.fencingToken}) while ${believers[0].what} still held it`);
    }
  }

  private believeHandle(lock: LockEntity, what: string): Belief {
    const belief = { name: lock.name, what: `the lock of ${what} (token ${lock.fencingToken})`, holds: () => !lock.expired };
    this.beliefs.push(belief);
    return belief;
  }

  private async getLock(name: string, contended: boolean, what: string): Promise<void> {
    const blocker = contended ? await this.observer.locks.tryLock(name, { expires: LONG_LEASE }) : null;
    const unblocked = blocker && sleep(300).then(() => this.observer.locks.unlock(blocker));
    const firstCall = this.dialect.calls.length;
    let outcome: Attempt<LockEntity>;
    try {
      outcome = await this.attempt(what, () => this.faulty.getLock(name, { expires: LONG_LEASE, wait: blocker ? 3 : 0 }));
    } finally {
      // Awaited even when the case fails here: left running, the observer's release would outlive the case, and its app.
      await unblocked;
    }
    if ('value' in outcome) return void this.believeHandle(outcome.value, what);
    const faulted = this.dialect.calls.slice(firstCall).find((call) => call.fault && call.fault.kind !== 'late-answer');
    const retriable = faulted && (faulted.fault!.kind !== 'fail-after' || faulted.method === 'sleep');
    if (blocker && retriable && outcome.error instanceof LockDatabaseError) {
      throw new Error(`${what}: the wait gave up with "${outcome.error.message}" when one ${faulted.method} call failed, instead of trying again`);
    }
  }

  private async holdManager(name: string, holdMs: number, what: string): Promise<void> {
    const outcome = await this.attempt(what, () => this.faulty.manager(name, { expires: SHORT_LEASE }));
    if (!('value' in outcome)) return;
    const manager = outcome.value;
    this.managers.push(manager);
    let told: { at: number; leaseEnd: number | undefined } | undefined;
    manager.signal.addEventListener('abort', () => (told = { at: Date.now(), leaseEnd: manager.mainLock.lockedUntil?.getTime() }));
    let releasing = false;
    this.beliefs.push({ name, what: `the manager of ${what}`, holds: () => !manager.signal.aborted && !releasing });
    const endAt = performance.now() + holdMs;
    while (performance.now() < endAt) {
      await sleep(PROBE_EVERY_MS);
      await this.probe(name, `while ${what} held it`);
    }
    releasing = true;
    await manager.release().catch(() => undefined);
    // An answer that arrives late brings a lease already partly spent: only the renewals' timing is judged.
    if (told && told.leaseEnd !== undefined && this.planned.fault.kind !== 'late-answer' && told.leaseEnd - told.at < TOLD_BEFORE_MS) {
      const by = `${told.leaseEnd - told.at} ms before its lease ended`;
      throw new Error(`${what}: the manager was told it lost its lock ${by}, not at least ${TOLD_BEFORE_MS} ms before`);
    }
  }

  /** Releases what the case still holds (the faulty app closes next) and what it left in the table. */
  async finish(): Promise<void> {
    await Promise.allSettled(this.managers.map((manager) => manager.release()));
    for (const name of FAULT_NAMES) await this.observer.locks.unlock(this.lockName(name));
  }
}
