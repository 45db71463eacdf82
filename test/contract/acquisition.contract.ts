import type { AcquireResult } from '../../lib/dialects/lock-dialect';
import { ContractContext, expectSecondsLeft, LONG_LEASE } from './contract-store';

/** Acquirers of one name in each round of the race, spread over every instance. */
const ACQUIRERS_PER_INSTANCE = 3;
const ROUNDS = 12;

export function acquisitionContract(context: ContractContext): void {
  describe('acquire', () => {
    it('grants a free name and returns the lock it wrote, which every instance then finds', async () => {
      const name = context.name('free');
      const request = context.request(name, { lockedBy: 'host-a', lockProcess: 42 });
      const result = await context.a.acquire(request);
      expect(result.acquired).toBe(true);
      const lock = (result as Extract<AcquireResult, { acquired: true }>).lock;
      expect(lock).toMatchObject({ name, owner: request.owner, lockedBy: 'host-a', lockProcess: 42 });
      expect(Number.isSafeInteger(lock.fencingToken) && lock.fencingToken > 0).toBe(true);
      expect(lock.lockedUntil!.getTime() - lock.createdAt.getTime()).toBe(LONG_LEASE * 1000);
      expectSecondsLeft(lock.secondsLeft, LONG_LEASE);

      const found = await context.b.find(name);
      expect(found).toMatchObject({ name, owner: request.owner, fencingToken: lock.fencingToken, lockedBy: 'host-a', lockProcess: 42 });
      expect(found!.lockedUntil).toEqual(lock.lockedUntil);
      expectSecondsLeft(found!.secondsLeft, LONG_LEASE);
    });

    it('grants a lock that never expires when expires is null', async () => {
      const name = context.name('forever');
      const lock = await context.take(context.a, name, { expires: null });
      expect(lock.lockedUntil).toBeNull();
      expect(lock.secondsLeft).toBeNull();
      expect(await context.b.find(name)).toMatchObject({ lockedUntil: null, secondsLeft: null, owner: lock.owner });
    });

    it('refuses a held name, telling who holds it until when, and writes nothing', async () => {
      const name = context.name('held');
      const held = await context.take(context.a, name, { lockedBy: 'host-a' });
      const refused = await context.b.acquire(context.request(name, { lockedBy: 'host-b' }));
      expect(refused.acquired).toBe(false);
      const { holder } = refused as Extract<AcquireResult, { acquired: false }>;
      expect(holder).toMatchObject({ lockedBy: 'host-a', lockedUntil: held.lockedUntil });
      expectSecondsLeft(holder!.secondsLeft, LONG_LEASE);
      const found = await context.a.find(name);
      expect(found).toMatchObject({ owner: held.owner, fencingToken: held.fencingToken, lockedBy: 'host-a', lockedUntil: held.lockedUntil });

      const forever = context.name('held-forever');
      await context.take(context.a, forever, { expires: null, lockedBy: 'host-a' });
      expect(await context.b.acquire(context.request(forever))).toEqual({
        acquired: false,
        holder: { lockedBy: 'host-a', lockedUntil: null, secondsLeft: null },
      });
    });

    it('grants a name to exactly one of many concurrent acquirers, round after round, and the others see the winner', async () => {
      const name = context.name('race');
      let lastToken = 0;
      for (let round = 0; round < ROUNDS; round++) {
        const requests = context.dialects.flatMap((dialect, instance) =>
          Array.from({ length: ACQUIRERS_PER_INSTANCE }, (_, i) => ({ dialect, request: context.request(name, { lockedBy: `r${round}-${instance}-${i}` }) })),
        );
        const results = await Promise.all(requests.map(({ dialect, request }) => dialect.acquire(request)));
        const winners = results.flatMap((result) => (result.acquired ? [result.lock] : []));
        expect(winners).toHaveLength(1);
        const [winner] = winners;
        for (const result of results) if (!result.acquired) expect(result.holder?.lockedBy).toBe(winner.lockedBy);
        expect(winner.fencingToken).toBeGreaterThan(lastToken);
        lastToken = winner.fencingToken;
        // The next round races for a released name, or (every third round) for an expired row to take over.
        if (round % 3 === 2) {
          await context.shorten(name);
          await context.expire();
        } else {
          expect(await context.b.release({ name, owner: winner.owner })).toBe(true);
        }
      }
    });

    it('treats names as exact: case, trailing spaces and Unicode normal forms make different locks', async () => {
      const base = context.name('exact');
      const names = [`${base}-k`, `${base}-K`, `${base}-k `, `${base}-\u00e9`, `${base}-e\u0301`];
      const locks = [];
      for (const name of names) locks.push(await context.take(context.a, name));
      for (const [i, name] of names.entries()) expect(await context.b.find(name)).toMatchObject({ name, owner: locks[i].owner });
    });
  });

  describe('fencing tokens', () => {
    it('grow with every acquisition, across names, instances, releases, expiry, clean-up and restarts', async () => {
      const name = context.name('fenced');
      const tokens: number[] = [];
      const first = await context.take(context.a, name);
      tokens.push(first.fencingToken);
      expect(await context.a.release({ name, owner: first.owner })).toBe(true);
      tokens.push((await context.take(context.b, name)).fencingToken);
      tokens.push((await context.take(context.a, context.name('other'))).fencingToken);
      // Expired, then taken over.
      await context.shorten(name);
      await context.expire();
      tokens.push((await context.take(context.dialects[2], name)).fencingToken);
      // Expired, cleaned up, then taken afresh.
      await context.shorten(name);
      await context.expire();
      expect(await context.a.deleteExpired(1000)).toBeGreaterThanOrEqual(1);
      expect(await context.a.find(name)).toBeNull();
      tokens.push((await context.take(context.b, name)).fencingToken);
      // An instance started now (an app restarted) goes on from there.
      const restarted = await context.store.openDialect(context.table);
      try {
        tokens.push((await context.take(restarted, context.name('after-restart'))).fencingToken);
      } finally {
        await restarted.close();
      }

      for (const token of tokens) expect(Number.isSafeInteger(token)).toBe(true);
      for (let i = 1; i < tokens.length; i++) expect(tokens[i]).toBeGreaterThan(tokens[i - 1]);
    });
  });
}
