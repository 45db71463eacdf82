import { inspect } from 'node:util';
import { LockedError, LockEntity, LockFailError } from '../lib';
import { LockApp, useLockApps } from './support/lock-app';
import { describeEachDatabase, uniqueName } from './support/test-databases';

/** Everything a caller could log or send of a value: its inspection (every level) and its JSON. */
function shown(value: unknown): string {
  return `${inspect(value, { depth: Infinity, showHidden: true })}\n${JSON.stringify(value)}`;
}

describeEachDatabase('What a lock of another holder reveals', (database) => {
  const isolation = uniqueName('descriptions');
  let winner: LockApp;
  let loser: LockApp;
  let name: string;
  let counter = 0;

  useLockApps(database, isolation, 2, (apps) => ([winner, loser] = apps));
  beforeEach(() => {
    name = `held-${++counter}`;
  });

  /** The winner's lock is as it took it: same grant, same lease, and its own handle still releases it. */
  async function expectUntouched(held: LockEntity): Promise<void> {
    const [listed] = (await winner.locks.listLocks()).filter((lock) => lock.name === held.name);
    expect(listed).toMatchObject({ fencingToken: held.fencingToken, lockedUntil: held.lockedUntil });
    expect(await winner.locks.unlock(held)).toBe(true);
  }

  it('LockFailError holds no owner token: what it gave the loser can neither renew nor release the winner’s lock', async () => {
    const held = await winner.locks.getLock(name, { expires: 60, lockedBy: 'winner-host' });
    const error = await loser.locks.setLock([`${name}-free`, name], { fail: true }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(LockFailError);
    const { lock } = error as LockFailError;
    expect(lock).toMatchObject({ name, owner: null, lockedBy: 'winner-host', fencingToken: held.fencingToken, lockedUntil: held.lockedUntil });
    expect(shown(error)).not.toContain(held.owner);
    expect(shown(lock)).not.toContain(held.owner);

    const refused = `lock describes lock "${name}" without an owner token`;
    await expect(loser.locks.renewLock(lock, { expires: 3600 })).rejects.toThrow(new RegExp(`^renewLock ${refused}`));
    await expect(loser.locks.renewLock({ ...lock } as LockEntity, { expires: 3600 })).rejects.toThrow(TypeError);
    await expect(loser.locks.unlock(lock)).rejects.toThrow(new RegExp(`^unlock ${refused}`));
    await expect(loser.locks.unlock({ ...lock } as LockEntity)).rejects.toThrow(TypeError);
    expect(await loser.locks.isLocked(lock)).toBe(true);
    await expectUntouched(held);
  });

  it('LockedError names the holder, never its owner token', async () => {
    const held = await winner.locks.getLock(name, { expires: 60, lockedBy: 'winner-host' });
    const error = await loser.locks.getLock(name).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(LockedError);
    expect(error).toMatchObject({ lockName: name, lockedBy: 'winner-host' });
    expect(shown(error)).not.toContain(held.owner);
    await expectUntouched(held);
  });

  it('listLocks describes every lock without its owner token; a listed lock is acted on by its name', async () => {
    const held = await winner.locks.getLock(name, { expires: 60, lockProcess: 77 });
    const [listed] = (await loser.locks.listLocks()).filter((lock) => lock.name === name);
    expect(listed).toMatchObject({ name, owner: null, lockProcess: 77, fencingToken: held.fencingToken });
    expect(shown(listed)).not.toContain(held.owner);
    await expect(loser.locks.unlock(listed)).rejects.toThrow(TypeError);
    await expect(loser.locks.renewLock(listed)).rejects.toThrow(TypeError);
    await expectUntouched(held);

    const again = await winner.locks.getLock(name, { expires: 60 });
    const [relisted] = (await loser.locks.listLocks()).filter((lock) => lock.name === name);
    expect(await loser.locks.unlock(relisted.name)).toBe(true);
    expect(await winner.locks.unlock(again)).toBe(false);
  });

  it('setLock returns its own handles for the names it created, and descriptions of the locks it found', async () => {
    const held = await winner.locks.getLock(name, { expires: 60 });
    const result = await loser.locks.setLock([name, `${name}-new`], { timeout: 60 });
    const [found, created] = result.locks;
    expect(found).toMatchObject({ name, owner: null, fencingToken: held.fencingToken });
    expect(created.owner).toMatch(/^[0-9a-f-]{36}$/);
    expect(shown(result)).not.toContain(held.owner);
    await expect(loser.locks.unlock(found)).rejects.toThrow(TypeError);
    expect(await loser.locks.unlock(created)).toBe(true);
    expect(await winner.locks.unlock(held)).toBe(true);
  });

  it('a renewal by name answers with a description: it may renew another’s lock, never hand over its owner token', async () => {
    const held = await winner.locks.getLock(name, { expires: 60 });
    const renewed = await loser.locks.renewLock(name, { expires: 120 });
    expect(renewed).toMatchObject({ name, owner: null, fencingToken: held.fencingToken });
    expect(renewed.expiresSeconds).toBeGreaterThan(100);
    expect(shown(renewed)).not.toContain(held.owner);
    await expect(loser.locks.unlock(renewed)).rejects.toThrow(TypeError);
    expect(await winner.locks.unlock(held)).toBe(true);
  });
});
