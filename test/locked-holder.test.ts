import { LockedError, LockEntity } from '../lib';
import { LockApp, sleep, useLockApps } from './support/lock-app';
import { describeEachDatabase, uniqueName } from './support/test-databases';

/** Four app instances on one lock table, each with its own connections, racing for one name. */
const INSTANCES = 4;
const CALLS_PER_INSTANCE = 4;
const ROUNDS = 8;

describeEachDatabase('The holder a LockedError names', (database) => {
  const isolation = uniqueName('holder');
  let apps: LockApp[];

  useLockApps(database, isolation, INSTANCES, (started) => (apps = started));

  /**
   * Every instance tries to take `name` at once, each call under a `lockedBy` of its own. Exactly one
   * wins; every loser's error must name the winner as the holder, with the winner's lease, which the
   * database still lists as live once the race is over.
   */
  async function expectLosersNameTheWinner(name: string): Promise<void> {
    const calls = apps.flatMap((app, instance) =>
      Array.from({ length: CALLS_PER_INSTANCE }, (_, call) =>
        app.locks.getLock(name, { expires: 60, lockedBy: `instance ${instance} call ${call}` }),
      ),
    );
    const outcomes = await Promise.allSettled(calls);
    const winners = outcomes.flatMap((outcome) => (outcome.status === 'fulfilled' ? [outcome.value] : []));
    const losers = outcomes.flatMap((outcome) => (outcome.status === 'rejected' ? [outcome.reason] : []));
    expect(winners).toHaveLength(1);
    const [winner]: LockEntity[] = winners;
    const current = (await apps[0].locks.listLocks()).find((lock) => lock.name === name);
    expect(current).toMatchObject({ lockedBy: winner.lockedBy, lockedUntil: winner.lockedUntil });
    for (const loser of losers) expect(loser).toBeInstanceOf(LockedError);
    const named = losers.map((error: LockedError) => ({ lockedBy: error.lockedBy, lockedUntil: error.lockedUntil }));
    expect(named).toEqual(losers.map(() => ({ lockedBy: winner.lockedBy, lockedUntil: winner.lockedUntil })));
    expect(losers[0].message).toBe(`Lock "${name}" is held by ${winner.lockedBy} until ${winner.lockedUntil!.toISOString()}.`);
  }

  it('is the instance that took an expired lock over in the race, with its lease', async () => {
    for (let round = 0; round < ROUNDS; round++) {
      const name = `expired-${round}`;
      await apps[0].locks.getLock(name, { expires: 0.2, lockedBy: 'the expired holder' });
      await sleep(300);
      await expectLosersNameTheWinner(name);
    }
  });

  it('is the instance that took a lock released a moment before, with its lease', async () => {
    for (let round = 0; round < ROUNDS; round++) {
      const name = `released-${round}`;
      await apps[0].locks.unlock(await apps[0].locks.getLock(name, { lockedBy: 'the releasing holder' }));
      await expectLosersNameTheWinner(name);
    }
  });
});
