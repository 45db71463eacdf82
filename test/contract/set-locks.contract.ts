import type { SetLocksRequest } from '../../lib/dialects/lock-dialect';
import type { ContractContext } from './contract-store';
import { expectSecondsLeft } from './contract-store';

export function setLocksContract(context: ContractContext): void {
  describe('setLocks', () => {
    /** A request for `names`, each with a new owner token, leased for `expires` seconds. */
    const request = (names: string[], flags: Omit<SetLocksRequest, 'locks'>, expires = 120): SetLocksRequest => ({
      locks: names.map((name) => context.request(name, { expires })),
      ...flags,
    });

    it('with fail, rolls the whole call back at a held name and names the lock that holds it', async () => {
      const base = context.name('fail');
      // The held name is in the middle, in the order given and in sorted order: a name before it was written first.
      const [first, held, last] = [`${base}-a`, `${base}-m`, `${base}-z`];
      const holder = await context.take(context.a, held);
      const result = await context.b.setLocks(request([first, held, last], { fail: true, renew: true, create: true }));
      expect(result).toEqual({ conflict: expect.objectContaining({ name: held, owner: holder.owner, fencingToken: holder.fencingToken }) });
      expect(await context.a.find(first)).toBeNull();
      expect(await context.a.find(last)).toBeNull();
      expect(await context.a.find(held)).toMatchObject({ owner: holder.owner, lockedUntil: holder.lockedUntil });
    });

    it('with fail and every name free, creates them all', async () => {
      const base = context.name('fail-free');
      const names = [`${base}-b`, `${base}-a`];
      const sent = request(names, { fail: true, renew: true, create: true });
      const result = await context.b.setLocks(sent);
      expect(result).toMatchObject({
        steps: names.map((name, i) => ({ name, existing: null, action: 'create', lock: { name, owner: sent.locks[i].owner } })),
      });
      for (const [i, name] of names.entries()) expect(await context.a.find(name)).toMatchObject({ owner: sent.locks[i].owner });
    });

    it('with renew and create, extends held names (keeping their holder) and creates free ones, in the order given', async () => {
      const base = context.name('renew-create');
      const [free, held, heldLonger] = [`${base}-b`, `${base}-a`, `${base}-c`];
      const holder = await context.take(context.a, held, { expires: 60 });
      const longer = await context.take(context.a, heldLonger, { expires: 600 });
      const sent = request([free, held, heldLonger], { fail: false, renew: true, create: true });
      const result = await context.b.setLocks(sent);
      if (!('steps' in result)) throw new Error(`setLocks met a conflict: ${result.conflict.name}`);
      const [created, extended, kept] = result.steps;

      expect(created).toMatchObject({ name: free, existing: null, action: 'create', lock: { name: free, owner: sent.locks[0].owner } });
      expect(created.lock!.fencingToken).toBeGreaterThan(longer.fencingToken);
      expectSecondsLeft(created.lock!.secondsLeft, 120);

      expect(extended).toMatchObject({ name: held, action: 'extend', existing: { owner: holder.owner, lockedUntil: holder.lockedUntil } });
      expect(extended.lock).toMatchObject({ owner: holder.owner, fencingToken: holder.fencingToken });
      expectSecondsLeft(extended.lock!.secondsLeft, 120);

      // Extending never shortens a lease.
      expect(kept).toMatchObject({ name: heldLonger, action: 'extend', lock: { owner: longer.owner, lockedUntil: longer.lockedUntil } });

      expect(await context.a.find(free)).toMatchObject({ owner: sent.locks[0].owner, fencingToken: created.lock!.fencingToken });
      expect(await context.a.find(held)).toMatchObject({ owner: holder.owner, lockedUntil: extended.lock!.lockedUntil });
    });

    it('without renew, skips held names and leaves them as they were', async () => {
      const base = context.name('no-renew');
      const [held, free] = [`${base}-a`, `${base}-b`];
      const holder = await context.take(context.a, held, { expires: 60 });
      const result = await context.b.setLocks(request([held, free], { fail: false, renew: false, create: true }));
      expect(result).toMatchObject({
        steps: [
          { name: held, action: 'skip', existing: { owner: holder.owner }, lock: { owner: holder.owner, lockedUntil: holder.lockedUntil } },
          { name: free, action: 'create', existing: null },
        ],
      });
      expect(await context.a.find(held)).toMatchObject({ owner: holder.owner, lockedUntil: holder.lockedUntil });
    });

    it('without create, skips free names and leaves them unlocked', async () => {
      const base = context.name('no-create');
      const [held, free] = [`${base}-a`, `${base}-b`];
      const holder = await context.take(context.a, held, { expires: 60 });
      const renewing = await context.b.setLocks(request([held, free], { fail: false, renew: true, create: false }));
      expect(renewing).toMatchObject({
        steps: [
          { name: held, action: 'extend', lock: { owner: holder.owner } },
          { name: free, action: 'skip', existing: null, lock: null },
        ],
      });
      expect(await context.a.find(free)).toBeNull();
      const neither = await context.b.setLocks(request([held, free], { fail: false, renew: false, create: false }));
      expect(neither).toMatchObject({ steps: [{ name: held, action: 'skip' }, { name: free, action: 'skip', lock: null }] });
      expect(await context.a.find(free)).toBeNull();
    });
  });
}
