import { LockService } from '../lib';
import { LockApp, tableRows, useLockApp } from './support/lock-app';
import { describeEachDatabase, uniqueName } from './support/test-databases';

type Case = [description: string, call: (locks: LockService) => Promise<unknown>, error: typeof TypeError, names: RegExp];

const longName = 'x'.repeat(256);

const cases: Case[] = [
  ['getLock with an empty name', (l) => l.getLock(''), RangeError, /getLock name must not be empty/],
  ['getLock with a number for a name', (l) => l.getLock(42 as never), TypeError, /getLock name must be a string/],
  ['getLock with no name', (l) => (l.getLock as (n?: string) => Promise<unknown>)(), TypeError, /getLock name must be a string/],
  ['getLock with a null name', (l) => l.getLock(null as never), TypeError, /getLock name .*null/],
  ['getLock with a 256-character name', (l) => l.getLock(longName), RangeError, /getLock name is 256 characters long; .* at most 255/],
  ['getLock with a NUL in the name', (l) => l.getLock('a\0b'), RangeError, /getLock name must not contain the NUL/],
  ['getLock with negative expires', (l) => l.getLock('a', { expires: -1 }), RangeError, /getLock option expires must be at least 0/],
  ['getLock with NaN expires', (l) => l.getLock('a', { expires: NaN }), RangeError, /getLock option expires must be a finite/],
  ['getLock with infinite expires', (l) => l.getLock('a', { expires: Infinity }), RangeError, /getLock option expires must be a finite/],
  ['getLock with string expires', (l) => l.getLock('a', { expires: '60' as never }), TypeError, /getLock option expires must be a number/],
  ['getLock with huge expires', (l) => l.getLock('a', { expires: 1e12 }), RangeError, /getLock option expires must be at most/],
  ['getLock with negative wait', (l) => l.getLock('a', { wait: -5 }), RangeError, /getLock option wait must be at least 0/],
  ['getLock with NaN wait', (l) => l.getLock('a', { wait: NaN }), RangeError, /getLock option wait must be a finite/],
  ['getLock with string wait', (l) => l.getLock('a', { wait: '5' as never }), TypeError, /getLock option wait must be a number/],
  ['getLock with a wait longer than a timer', (l) => l.getLock('a', { wait: 1e8 }), RangeError, /getLock option wait must be at most 2147483/],
  ['getLock with a number for lockedBy', (l) => l.getLock('a', { lockedBy: 5 as never }), TypeError, /getLock option lockedBy must be a string/],
  ['getLock with a fractional lockProcess', (l) => l.getLock('a', { lockProcess: 1.5 }), TypeError, /getLock option lockProcess must be an integer/],
  ['getLock with a 64-bit lockProcess', (l) => l.getLock('a', { lockProcess: 2 ** 40 }), RangeError, /getLock option lockProcess must fit/],
  ['getLock with a string signal', (l) => l.getLock('a', { signal: 'stop' as never }), TypeError, /getLock option signal must be an AbortSignal/],
  ['getLock with options that are a string', (l) => l.getLock('a', 'fast' as never), TypeError, /getLock options must be an options object/],
  ['getLock with a misspelt option', (l) => l.getLock('a', { expire: 5 } as never), TypeError, /getLock options has an unknown option "expire"/],
  ['tryLock with an object for a name', (l) => l.tryLock({} as never), TypeError, /tryLock name must be a string/],
  ['unlock with a number', (l) => l.unlock(42 as never), TypeError, /unlock lock must be a lock name or a LockEntity/],
  ['unlock with an empty name', (l) => l.unlock(''), RangeError, /unlock lock must not be empty/],
  ['unlock with a handle without owner', (l) => l.unlock({ name: 'a', owner: '' } as never), TypeError, /unlock lock.owner must be/],
  ['renewLock with an empty name', (l) => l.renewLock(''), RangeError, /renewLock lock must not be empty/],
  ['renewLock with negative expires', (l) => l.renewLock('a', { expires: -5 }), RangeError, /renewLock option expires/],
  ['renewLock with a string addTime', (l) => l.renewLock('a', { addTime: 'yes' as never }), TypeError, /renewLock option addTime must be true or false/],
  ['renewLock with a number create', (l) => l.renewLock('a', { create: 1 as never }), TypeError, /renewLock option create must be true or false/],
  ['isLocked with null', (l) => l.isLocked(null as never), TypeError, /isLocked lock must be a lock name or a LockEntity/],
  ['setLock with no names', (l) => l.setLock([]), RangeError, /setLock names must hold at least one/],
  ['setLock with an empty name', (l) => l.setLock(['ok', '']), RangeError, /setLock names\[1\] must not be empty/],
  ['setLock with a number among the names', (l) => l.setLock([1 as never]), TypeError, /setLock names\[0\] must be a string/],
  ['setLock with an object for names', (l) => l.setLock({} as never), TypeError, /setLock names must be a lock name or an array/],
  ['setLock with NaN timeout', (l) => l.setLock(['a'], { timeout: NaN }), RangeError, /setLock option timeout must be a finite/],
  ['setLock with a string fail', (l) => l.setLock(['a'], { fail: 'true' as never }), TypeError, /setLock option fail must be true or false/],
  ['manager with an empty name', (l) => l.manager(''), RangeError, /manager name must not be empty/],
  ['manager with negative minHold', (l) => l.manager('a', { minHold: -1 }), RangeError, /manager option minHold must be at least 0/],
  ['manager with a string autoRenew', (l) => l.manager('a', { autoRenew: 'no' as never }), TypeError, /manager option autoRenew must be true or false/],
  ['withLock without a function', (l) => l.withLock('a', 'work' as never), TypeError, /withLock work must be a function/],
  ['withLock with infinite expires', (l) => l.withLock('a', () => 1, { expires: Infinity }), RangeError, /withLock option expires must be a finite/],
];

describeEachDatabase('Bad arguments', (database) => {
  const isolation = uniqueName('arguments');
  let app: LockApp;
  let before: unknown[];

  useLockApp(database, isolation, async (started) => {
    app = started;
    await app.locks.getLock('a', { expires: 60 });
    await app.locks.getLock('forever', { expires: 0 });
    before = await tableRows(app, isolation);
  });

  it.each(cases)('rejects %s with an error naming the argument', async (_description, call, errorClass, message) => {
    const error = await call(app.locks).then(
      () => new Error('the call succeeded'),
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(errorClass);
    expect((error as Error).message).toMatch(message);
    expect(await tableRows(app, isolation)).toEqual(before);
  });

  it('rejects bad arguments of a manager’s own methods', async () => {
    const manager = await app.locks.manager('m', { expires: 60 });
    await expect(manager.lock('n', { expires: Infinity })).rejects.toThrow(/lock option expires must be a finite/);
    await expect(manager.lock('n', { ret: 'yes' as never })).rejects.toThrow(/lock option ret must be true or false/);
    await expect(manager.lock('')).rejects.toThrow(/lock name must not be empty/);
    await expect(manager.renew({ expires: -1 })).rejects.toThrow(/renew option expires must be at least 0/);
    expect(manager.locks.map((lock) => lock.name)).toEqual(['m']);
    await manager.release();
  });

  it('round-trips names that look like SQL, verbatim', async () => {
    const names = [
      "x'; DROP TABLE lockmgr_lock; --",
      'quote " and \' and ` and \\ backslash',
      '100% of _every_ name',
      'Grüße, Ελληνικά, 日本語, עברית',
      '🔒 emoji 👩‍💻',
      'x'.repeat(255),
      '😀'.repeat(255),
    ];
    for (const name of names) {
      const lock = await app.locks.getLock(name, { expires: 60 });
      expect(lock.name).toBe(name);
      expect(await app.locks.isLocked(name)).toBe(true);
      expect((await app.locks.listLocks()).some((listed) => listed.name === name)).toBe(true);
      expect(await app.locks.unlock(lock)).toBe(true);
    }
    expect(await tableRows(app, isolation)).toEqual(before);
  });
});
