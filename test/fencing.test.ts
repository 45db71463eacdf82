import { createLockApp, LockApp, sleep, useLockApp } from './support/lock-app';
import { describeEachDatabase, uniqueName } from './support/test-databases';

describeEachDatabase('Fencing tokens', (database) => {
  const isolation = uniqueName('fencing');
  let app: LockApp;

  useLockApp(database, isolation, (started) => (app = started));

  it('strictly increase across release, expiry and clean-up, as safe integers', async () => {
    const tokens: number[] = [];
    const take = async (expires: number) => {
      const lock = await app.locks.getLock('resource', { expires });
      expect(Number.isSafeInteger(lock.fencingToken)).toBe(true);
      tokens.push(lock.fencingToken);
      return lock;
    };
    await app.locks.unlock(await take(60));
    await take(0.2);
    await sleep(300);
    await take(0.2);
    await sleep(300);
    expect(await app.locks.cleanLocks()).toBe(1);
    expect(await app.locks.isLocked('resource')).toBe(false);
    const renewed = await app.locks.renewLock(await take(60), { expires: 120 });
    expect(renewed.fencingToken).toBe(tokens.at(-1));
    await app.locks.unlock('resource');
    await app.locks.setLock(['resource']);
    tokens.push((await app.locks.listLocks())[0].fencingToken);
    for (let i = 1; i < tokens.length; i++) expect(tokens[i]).toBeGreaterThan(tokens[i - 1]);
  });

  it('survive a restart of the app and differ between names', async () => {
    const first = await app.locks.getLock('a');
    const second = await app.locks.getLock('b');
    expect(second.fencingToken).toBeGreaterThan(first.fencingToken);
    const restarted = await createLockApp(database, isolation);
    try {
      await app.locks.unlock(second);
      expect((await restarted.locks.getLock('b')).fencingToken).toBeGreaterThan(second.fencingToken);
    } finally {
      await restarted.close();
    }
  });
});
