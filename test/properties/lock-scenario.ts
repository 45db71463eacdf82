import type fc from 'fast-check';
import { LockedError, LockEntity, LockFailError, LockManager, LockNotFoundError, LockService } from '../../lib';
import { LockApp, sleep, tableRows } from '../support/lock-app';
import { CallSpan, LockModel, ownerToken } from '../support/lock-model';
import type { Name, Operation, Racer } from './lock-operations';

/** Expiries this close to a call (in ms) may fall either side of it: the database's clock decides. */
const MARGIN_MS = 50;
/** The lease of managers that renew themselves: long enough that a loaded machine does not lose them. */
const RENEWING_LEASE = 3;
/** The lease of locks taken by racers and waiters. */
const LONG_LEASE = 30;

interface ModelManager {
  manager: LockManager;
  autoRenew: boolean;
  expires: number | null;
  /** Owner tokens of every lock the manager was told it took. */
  owners: Set<string>;
  released: boolean;
}

type Outcome<T> = { value: T; span: CallSpan } | { error: unknown; span: CallSpan };

async function timed<T>(call: () => Promise<T>): Promise<Outcome<T>> {
  const from = performance.now();
  try {
    const value = await call();
    return { value, span: { from, to: performance.now() } };
  } catch (error) {
    return { error, span: { from, to: performance.now() } };
  }
}

function unexpected(what: string, error: unknown): Error {
  return new Error(`${what} failed unexpectedly: ${error instanceof Error ? `${error.name}: ${error.message}` : String(error)}`);
}

/**
 * Runs operations of several clients on one lock table, checking each result, and the table, against
 * a `LockModel`. Lock names are prefixed with the case's own prefix, so cases never share a lock.
 */
export class LockScenario {
  private readonly model = new LockModel(MARGIN_MS);
  private readonly handles: LockEntity[] = [];
  private readonly managers: ModelManager[] = [];
  private grants = 0;

  constructor(
    private readonly apps: LockApp[],
    private readonly table: string,
    private readonly prefix: string,
    private readonly scheduler: fc.Scheduler,
  ) {}

  private client(index: number): LockService {
    return this.apps[index].locks;
  }

  private lockName(name: Name): string {
    return `${this.prefix}${name}`;
  }

  /** A `locked_by` no other grant has, so a `LockedError` can be checked to name the current holder. */
  private nextLockedBy(): string {
    return `grant-${++this.grants}`;
  }

  private handle(index: number): LockEntity | undefined {
    return this.handles.length === 0 ? undefined : this.handles[index % this.handles.length];
  }

  private activeManager(index: number): ModelManager | undefined {
    const active = this.managers.filter((entry) => !entry.released);
    return active.length === 0 ? undefined : active[index % active.length];
  }

  /** A grant the model allows, recorded with its handle. */
  private granted(name: string, lock: LockEntity, expires: number | null, span: CallSpan, what: string): void {
    this.model.grant(name, lock, expires, span, what);
    this.handles.push(lock);
  }

  /** A `LockedError` or a null `tryLock`: the name was held, by the holder the error names. */
  private refused(name: string, error: unknown, span: CallSpan, what: string): void {
    if (!(error instanceof LockedError)) throw unexpected(what, error);
    const holder = this.model.lock(name);
    if (holder && error.lockedBy !== undefined && error.lockedBy !== holder.lockedBy) {
      throw new Error(`${what}: LockedError names ${error.lockedBy} as the holder of "${name}", but it is ${holder.lockedBy}`);
    }
    this.model.observe(name, true, span, what);
  }

  async run(operation: Operation): Promise<void> {
    const what = JSON.stringify(operation);
    switch (operation.op) {
      case 'getLock':
      case 'tryLock': {
        const name = this.lockName(operation.name);
        const wait = operation.op === 'getLock' ? operation.wait : 0;
        const options = { expires: operation.expires, lockedBy: this.nextLockedBy(), ...(wait ? { wait } : {}) };
        const service = this.client(operation.client);
        const outcome = await timed(() => (operation.op === 'getLock' ? service.getLock(name, options) : service.tryLock(name, options)));
        if ('error' in outcome) return this.refused(name, outcome.error, outcome.span, what);
        if (outcome.value === null) return this.model.observe(name, true, outcome.span, what);
        return this.granted(name, outcome.value, operation.expires, outcome.span, what);
      }
      case 'unlockHandle': {
        const handle = this.handle(operation.handle);
        if (!handle) return;
        const outcome = await timed(() => this.client(operation.client).unlock(handle));
        if ('error' in outcome) throw unexpected(what, outcome.error);
        if (this.model.lock(handle.name)?.owner === handle.owner) {
          this.model.observe(handle.name, outcome.value, outcome.span, what);
          return this.model.release(handle.name);
        }
        if (outcome.value) throw new Error(`${what}: a stale handle of "${handle.name}" released the lock of ${this.model.describe(handle.name)}`);
        return;
      }
      case 'unlockName':
      case 'isLocked': {
        const name = this.lockName(operation.name);
        const service = this.client(operation.client);
        const outcome = await timed(() => (operation.op === 'isLocked' ? service.isLocked(name) : service.unlock(name)));
        if ('error' in outcome) throw unexpected(what, outcome.error);
        this.model.observe(name, outcome.value, outcome.span, what);
        if (operation.op === 'unlockName') this.model.release(name);
        return;
      }
      case 'renewLock':
        return this.renewLock(operation, what);
      case 'setLock':
        return this.setLock(operation, what);
      case 'listLocks':
        return this.checkTable(operation.client, what);
      case 'manager':
        return this.openManager(operation, what);
      case 'managerLock':
        return this.managerLock(operation.manager, this.lockName(operation.name), what);
      case 'managerRenew':
        return this.managerRenew(operation.manager, operation.expires, what);
      case 'managerRelease': {
        const entry = this.activeManager(operation.manager);
        if (entry) await this.releaseManager(entry, what);
        return;
      }
      case 'waitAbort':
        return this.waitAbort(operation, what);
      case 'waitHandoff':
        return this.waitHandoff(operation, what);
      case 'releaseWhileWaiting':
        return this.releaseWhileWaiting(operation.manager, this.lockName(operation.name), what);
      case 'race':
        return this.race(operation.racers, what);
      case 'sleep':
        await sleep(operation.ms);
        return;
    }
  }

  private async renewLock(operation: Extract<Operation, { op: 'renewLock' }>, what: string): Promise<void> {
    const handle = operation.handle === null ? undefined : this.handle(operation.handle);
    const name = handle?.name ?? this.lockName(operation.name);
    const { expires, addTime, create } = operation;
    const before = this.model.lock(name);
    const ours = before !== undefined && (handle === undefined || before.owner === handle.owner);
    const lockedBy = this.nextLockedBy();
    const outcome = await timed(() => this.client(operation.client).renewLock(handle ?? name, { expires, addTime, create, lockedBy }));
    const holding = this.model.holding(name, outcome.span);
    if ('error' in outcome) {
      if (ours && holding === 'held') throw unexpected(what, outcome.error);
      if (outcome.error instanceof LockNotFoundError && !create) return ours ? this.model.observe(name, false, outcome.span, what) : undefined;
      if (create && !ours) return this.refused(name, outcome.error, outcome.span, what);
      throw unexpected(what, outcome.error);
    }
    const renewed = outcome.value;
    // A renewal keeps the lock's fencing token; taking it afresh draws a new one. (A renewal by name answers without the owner token.)
    if (ours && renewed.fencingToken === before.fencingToken) {
      this.model.expectHolder(renewed, what);
      return this.model.renew(name, expires, addTime ? 'add' : 'extend', outcome.span);
    }
    if (!create) throw new Error(`${what} returned a lock of another owner without create`);
    if (ours) this.model.observe(name, false, outcome.span, `${what} (renewal part)`);
    this.granted(name, renewed, expires, outcome.span, what);
  }

  private async setLock(operation: Extract<Operation, { op: 'setLock' }>, what: string): Promise<void> {
    const names = operation.names.map((name) => this.lockName(name));
    const { timeout, fail, renew, create } = operation;
    const outcome = await timed(() => this.client(operation.client).setLock(names, { timeout, fail, renew, create, lockedBy: this.nextLockedBy() }));
    if ('error' in outcome) {
      if (!(outcome.error instanceof LockFailError) || !fail) throw unexpected(what, outcome.error);
      this.model.expectHolder(outcome.error.lock, what);
      // All or nothing: the names that were free must still be, which the table check below sees.
      return this.checkTable(operation.client, `the table after ${what}`);
    }
    const { statuses, locks } = outcome.value;
    // The names one call creates get their tokens in the order it locks them, not the order they were given in.
    const token = (name: string) => locks.find((lock) => lock.name === name)!.fencingToken;
    const isCreate = ([, status]: (typeof statuses)[number]) => status.status === 'create';
    const creates = statuses.filter(isCreate).sort(([a], [b]) => token(a) - token(b));
    for (const [name, status] of [...statuses.filter((entry) => !isCreate(entry)), ...creates]) {
      this.model.observe(name, status.wasLocked, outcome.span, what);
      const expected = status.wasLocked ? (renew ? 'extend' : 'skip') : create ? 'create' : 'skip';
      if (status.wasLocked && fail) throw new Error(`${what} found "${name}" locked, yet did not fail`);
      if (status.status !== expected) throw new Error(`${what} did "${status.status}" on "${name}" instead of "${expected}"`);
      const lock = locks.find((candidate) => candidate.name === name);
      if (status.status === 'create') this.granted(name, lock!, timeout, outcome.span, what);
      if (status.status === 'extend') {
        this.model.expectHolder(lock!, what);
        this.model.renew(name, timeout, 'extend', outcome.span);
      }
    }
  }

  /** Checks `listLocks` of one client and the raw rows against the model. */
  async checkTable(client: number, what: string): Promise<void> {
    const outcome = await timed(() => this.client(client).listLocks());
    if ('error' in outcome) throw unexpected(what, outcome.error);
    this.model.checkList(outcome.value.filter((lock) => lock.name.startsWith(this.prefix)), outcome.span, what);
    const rows = (await tableRows(this.apps[client], this.table)) as { name: string; owner: string; fencing_token: string }[];
    this.model.checkRows(rows.filter((row) => row.name.startsWith(this.prefix)), what);
  }

  private async openManager(operation: Extract<Operation, { op: 'manager' }>, what: string): Promise<void> {
    const name = this.lockName(operation.name);
    const expires = operation.autoRenew ? RENEWING_LEASE : operation.expires;
    const options = { expires, autoRenew: operation.autoRenew, lockedBy: this.nextLockedBy() };
    const outcome = await timed(() => this.client(operation.client).manager(name, options));
    if ('error' in outcome) return this.refused(name, outcome.error, outcome.span, what);
    const manager = outcome.value;
    this.managers.push({ manager, autoRenew: operation.autoRenew, expires, owners: new Set([ownerToken(manager.mainLock)]), released: false });
    this.granted(name, manager.mainLock, expires, outcome.span, what);
    if (operation.autoRenew) this.model.renewForever(name, true, RENEWING_LEASE, outcome.span);
  }

  private async managerLock(index: number, name: string, what: string): Promise<void> {
    const entry = this.activeManager(index);
    if (!entry) return;
    const before = this.model.lock(name);
    const outcome = await timed(() => entry.manager.lock(name, { ret: true }));
    if ('error' in outcome) throw unexpected(what, outcome.error);
    if (!outcome.value) return this.model.observe(name, true, outcome.span, what);
    const lock = entry.manager.locks.find((candidate) => candidate.name === name)!;
    // A handle of an earlier grant: lock() answered from the manager's memory, without asking the table.
    if (this.model.knowsOwner(ownerToken(lock))) {
      const now = before?.owner === lock.owner ? `still holds it: ${this.model.describe(name)}` : `the model has ${this.model.describe(name)}`;
      throw new Error(`${what}: lock() said true without taking "${name}" (it kept its handle of token ${lock.fencingToken}; ${now}), instead of Locked`);
    }
    entry.owners.add(ownerToken(lock));
    this.granted(name, lock, entry.expires, outcome.span, what);
    if (entry.autoRenew) this.model.renewForever(name, true, RENEWING_LEASE, outcome.span);
  }

  private async managerRenew(index: number, expires: number, what: string): Promise<void> {
    const entry = this.activeManager(index);
    if (!entry) return;
    const before = entry.manager.mainLock;
    const name = before.name;
    const outcome = await timed(() => entry.manager.renew({ expires, addTime: true }));
    if ('error' in outcome) return this.refused(name, outcome.error, outcome.span, what);
    const renewed = outcome.value;
    if (renewed.owner === before.owner) {
      this.model.expectHolder(renewed, what);
      this.model.renew(name, expires, 'add', outcome.span);
    } else {
      entry.owners.add(ownerToken(renewed));
      this.granted(name, renewed, expires, outcome.span, what);
    }
    if (entry.autoRenew) this.model.renewForever(name, true, RENEWING_LEASE, outcome.span);
  }

  private async releaseManager(entry: ModelManager, what: string): Promise<CallSpan> {
    entry.released = true;
    const outcome = await timed(() => entry.manager.release());
    if ('error' in outcome) throw unexpected(what, outcome.error);
    for (const name of this.model.names()) if (entry.owners.has(this.model.lock(name)!.owner)) this.model.release(name);
    return outcome.span;
  }

  private async waitAbort(operation: Extract<Operation, { op: 'waitAbort' }>, what: string): Promise<void> {
    const name = this.lockName(operation.name);
    const controller = new AbortController();
    const reason = new Error('the wait was cancelled');
    const timer = setTimeout(() => controller.abort(reason), operation.abortAfterMs);
    const options = { wait: 5, expires: LONG_LEASE, signal: controller.signal, lockedBy: this.nextLockedBy() };
    const outcome = await timed(() => this.client(operation.client).getLock(name, options));
    clearTimeout(timer);
    if ('value' in outcome) return this.granted(name, outcome.value, LONG_LEASE, outcome.span, what);
    if (outcome.error !== reason) throw unexpected(what, outcome.error);
    const lateBy = outcome.span.to - outcome.span.from - operation.abortAfterMs;
    if (lateBy > 1000) throw new Error(`${what}: the wait ended ${Math.round(lateBy)} ms after its signal aborted`);
    this.model.observe(name, true, outcome.span, what);
  }

  /** A waiter takes the lock its holder releases (through the holder's handle) while it waits. */
  private async waitHandoff(operation: Extract<Operation, { op: 'waitHandoff' }>, what: string): Promise<void> {
    const name = this.lockName(operation.name);
    const holder = this.model.lock(name);
    const handle = holder && [...this.handles].reverse().find((candidate) => candidate.owner === holder.owner);
    const options = { wait: 5, expires: LONG_LEASE, lockedBy: this.nextLockedBy() };
    const waiter = timed(() => this.client(operation.client).getLock(name, options));
    await sleep(operation.releaseAfterMs);
    if (handle) {
      const released = await timed(() => this.client((operation.client + 1) % this.apps.length).unlock(handle));
      if ('error' in released) throw unexpected(what, released.error);
      if (released.value) this.model.release(name);
    }
    const outcome = await waiter;
    if ('error' in outcome) {
      if (!holder || handle) throw unexpected(what, outcome.error);
      return this.refused(name, outcome.error, outcome.span, what);
    }
    this.model.observe(name, false, { from: outcome.span.to, to: outcome.span.to }, `${what} (before the waiter took it)`);
    this.granted(name, outcome.value, LONG_LEASE, outcome.span, what);
  }

  /** A manager released while its `lock()` waits must not take the lock afterwards. */
  private async releaseWhileWaiting(index: number, name: string, what: string): Promise<void> {
    const entry = this.activeManager(index);
    if (!entry) return;
    let settledAt = Infinity;
    const waiting = timed(() => entry.manager.lock(name, { wait: 2, ret: true }));
    void waiting.then(() => (settledAt = performance.now()));
    await sleep(100);
    const releasedAt = performance.now();
    await this.releaseManager(entry, what);
    const holder = this.model.lock(name);
    const handle = holder && [...this.handles].reverse().find((candidate) => candidate.owner === holder.owner);
    if (handle && (await this.client(0).unlock(handle))) this.model.release(name);
    const outcome = await waiting;
    if ('value' in outcome && outcome.value && settledAt > releasedAt) {
      const lock = entry.manager.locks.find((candidate) => candidate.name === name);
      throw new Error(`${what}: lock() of a manager released while it waited took "${name}" afterwards (token ${lock?.fencingToken})`);
    }
    if ('value' in outcome && outcome.value) this.model.observe(name, false, outcome.span, what);
    await this.checkTable(0, `the table after ${what}`);
  }

  private async race(racers: Racer[], what: string): Promise<void> {
    const start = performance.now();
    const runs = racers.map((racer) => this.scheduler.schedule(Promise.resolve(JSON.stringify(racer))).then(() => this.runRacer(racer)));
    await this.scheduler.waitAll();
    const results = await Promise.all(runs);
    const span = { from: start, to: performance.now() };
    const winners = new Map<string, LockEntity[]>();
    const refused = new Set<string>();
    for (const result of results) {
      for (const lock of result.granted) winners.set(lock.name, [...(winners.get(lock.name) ?? []), lock]);
      for (const name of result.refused) refused.add(name);
    }
    for (const [name, locks] of winners) {
      if (locks.length > 1) throw new Error(`${what}: ${locks.length} racers took "${name}" at once (tokens ${locks.map((lock) => lock.fencingToken)})`);
      if (this.model.holding(name, span) === 'held') throw new Error(`${what}: a racer took "${name}", ${this.model.describe(name)}`);
    }
    for (const name of refused) if (!winners.has(name)) this.model.observe(name, true, span, what);
    const granted = [...winners.values()].flat().sort((a, b) => a.fencingToken - b.fencingToken);
    for (const lock of granted) {
      this.model.release(lock.name);
      this.granted(lock.name, lock, LONG_LEASE, span, what);
    }
  }

  private async runRacer(racer: Racer): Promise<{ granted: LockEntity[]; refused: string[] }> {
    const service = this.client(racer.client);
    const lockedBy = this.nextLockedBy();
    const what = `racer ${JSON.stringify(racer)}`;
    if (racer.op === 'setLock') {
      const names = racer.names.map((name) => this.lockName(name));
      const outcome = await timed(() => service.setLock(names, { timeout: LONG_LEASE, fail: racer.fail, renew: false, lockedBy }));
      if ('error' in outcome) {
        if (outcome.error instanceof LockFailError && racer.fail) return { granted: [], refused: [outcome.error.lock.name] };
        throw unexpected(what, outcome.error);
      }
      const created = outcome.value.statuses.filter(([, status]) => status.status === 'create').map(([name]) => name);
      const granted = outcome.value.locks.filter((lock) => created.includes(lock.name));
      return { granted, refused: outcome.value.statuses.filter(([, status]) => status.wasLocked).map(([name]) => name) };
    }
    const name = this.lockName(racer.name);
    if (racer.op === 'tryLock') {
      const lock = await service.tryLock(name, { expires: LONG_LEASE, lockedBy });
      return lock ? { granted: [lock], refused: [] } : { granted: [], refused: [name] };
    }
    const outcome = await timed(() => service.manager(name, { expires: LONG_LEASE, autoRenew: false, lockedBy }));
    if ('error' in outcome) {
      if (outcome.error instanceof LockedError) return { granted: [], refused: [name] };
      throw unexpected(what, outcome.error);
    }
    const manager = outcome.value;
    this.managers.push({ manager, autoRenew: false, expires: LONG_LEASE, owners: new Set([ownerToken(manager.mainLock)]), released: false });
    return { granted: [manager.mainLock], refused: [] };
  }

  /** Releases what the case still holds, so that its apps can be reused by the next case. */
  async finish(): Promise<void> {
    for (const entry of this.managers) if (!entry.released) await this.releaseManager(entry, 'releasing the managers at the end');
    await this.checkTable(0, 'the table at the end');
    for (const name of this.model.names()) await this.client(0).unlock(name);
  }

  /** Releases everything without checking, after a failure. */
  async abandon(): Promise<void> {
    await Promise.allSettled(this.managers.map((entry) => entry.manager.release()));
  }
}
