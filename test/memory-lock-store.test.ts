import { randomUUID } from 'node:crypto';
import type { AcquireRequest } from '../lib/dialects/lock-dialect';
import { ManualLockClock } from '../lib/testing/manual-lock-clock';
import { MemoryLockStore } from '../lib/testing/memory-lock-store';
import { MemoryDialect } from '../lib/testing/memory.dialect';
import { sleep } from './support/lock-app';

const request = (name: string, expires: number | null = 600): AcquireRequest => ({
  name,
  owner: randomUUID(),
  expires,
  lockedBy: 'test',
  lockProcess: 1,
});

describe('ManualLockClock', () => {
  it('starts at the given time, or now, and moves only by advance, fractions of a second included', () => {
    const clock = new ManualLockClock(new Date('2030-01-01T00:00:00Z'));
    clock.now().setTime(0);
    expect(clock.now()).toEqual(new Date('2030-01-01T00:00:00Z'));
    clock.advance(1.5);
    clock.advance(0.0005);
    clock.advance(0.0005);
    expect(clock.now()).toEqual(new Date('2030-01-01T00:00:01.501Z'));
    const before = Date.now();
    expect(Math.abs(new ManualLockClock().now().getTime() - before)).toBeLessThan(1000);
  });

  it.each([-1, NaN, Infinity, '1', undefined])('refuses to advance by %p seconds, naming the argument', (seconds) => {
    const clock = new ManualLockClock();
    expect(() => clock.advance(seconds as number)).toThrow(RangeError);
    expect(() => clock.advance(seconds as number)).toThrow(/^seconds /);
  });

  it('refuses a start that is not a valid Date, naming the argument', () => {
    expect(() => new ManualLockClock(new Date(NaN))).toThrow(/^start must be a valid Date/);
    expect(() => new ManualLockClock('2030-01-01' as unknown as Date)).toThrow(RangeError);
  });

  it('calls its advance listeners until they stop listening', () => {
    const clock = new ManualLockClock();
    const calls: number[] = [];
    const stop = clock.onAdvance(() => calls.push(clock.now().getTime()));
    clock.advance(1);
    stop();
    clock.advance(1);
    expect(calls).toEqual([clock.now().getTime() - 1000]);
  });
});

describe('MemoryLockStore', () => {
  it('refuses a clock without now(), naming the argument', () => {
    expect(() => new MemoryLockStore({} as ManualLockClock)).toThrow(/^clock must be a LockClock/);
  });

  it('expires leases in real time when given no clock', async () => {
    const dialect = new MemoryDialect(new MemoryLockStore());
    expect((await dialect.acquire(request('brief', 0.05))).acquired).toBe(true);
    expect(await dialect.find('brief')).not.toBeNull();
    await sleep(100);
    expect(await dialect.find('brief')).toBeNull();
  });
});

describe('MemoryDialect', () => {
  let clock: ManualLockClock;
  let store: MemoryLockStore;
  let dialect: MemoryDialect;
  beforeEach(() => {
    clock = new ManualLockClock();
    store = new MemoryLockStore(clock);
    dialect = new MemoryDialect(store);
  });

  it('answers in a later turn of the event loop, as a database does', async () => {
    let answered = false;
    const acquiring = dialect.acquire(request('later')).then(() => (answered = true));
    for (let i = 0; i < 10; i++) await Promise.resolve();
    expect(answered).toBe(false);
    await acquiring;
    expect(answered).toBe(true);
  });

  it('hands out copies: changing a returned lock changes nothing in the store', async () => {
    const result = await dialect.acquire(request('copied'));
    if (!result.acquired) throw new Error('not acquired');
    const { owner, lockedUntil } = result.lock;
    const expectedUntil = lockedUntil!.getTime();
    result.lock.owner = 'someone else';
    result.lock.lockedUntil!.setTime(0);
    (await dialect.find('copied'))!.lockedUntil!.setTime(0);
    (await dialect.list())[0].createdAt.setTime(0);
    expect(await dialect.find('copied')).toMatchObject({ owner, lockedUntil: new Date(expectedUntil) });
  });

  it('ends waiting sleeps when the clock advances, so a waiter sees a lease end at once', async () => {
    await dialect.acquire(request('lease', 600));
    const other = new MemoryDialect(store);
    const waiting = other.subscribe(request('lease'));
    try {
      const sleeping = waiting.sleep(20_000);
      await sleep(20);
      const from = performance.now();
      clock.advance(601);
      await sleeping;
      expect(performance.now() - from).toBeLessThan(1000);
      expect((await other.acquire(request('lease'))).acquired).toBe(true);
    } finally {
      waiting.close();
    }
  });

  it('rejects every call after close with an error that says so, and refuses new waits', async () => {
    await dialect.close();
    await expect(dialect.acquire(request('closed'))).rejects.toThrow('This connection to the in-memory lock store is closed: acquire cannot run after close().');
    await expect(dialect.list()).rejects.toThrow(/is closed: list cannot run/);
    expect(() => dialect.subscribe(request('closed'))).toThrow(/is closed: subscribe cannot run/);
    // Other instances on the store go on.
    expect((await new MemoryDialect(store).acquire(request('closed'))).acquired).toBe(true);
  });
});
