import { randomUUID } from 'node:crypto';
import type { ContractContext } from './contract-store';
import { expectSecondsLeft } from './contract-store';

export function ownerCheckContract(context: ContractContext): void {
  describe('release', () => {
    it("releases a lock only for its holder's owner token; a stale owner changes nothing", async () => {
      const name = context.name('release');
      const first = await context.take(context.a, name);
      expect(await context.b.release({ name, owner: randomUUID() })).toBe(false);
      expect(await context.b.find(name)).toMatchObject({ owner: first.owner, fencingToken: first.fencingToken });

      expect(await context.b.release({ name, owner: first.owner })).toBe(true);
      expect(await context.a.find(name)).toBeNull();
      expect(await context.a.release({ name, owner: first.owner })).toBe(false);

      // The first holder's owner is stale once someone else took the name.
      const second = await context.take(context.b, name);
      expect(await context.a.release({ name, owner: first.owner })).toBe(false);
      expect(await context.a.find(name)).toMatchObject({ owner: second.owner, fencingToken: second.fencingToken });
    });

    it('releases whoever holds the name when the owner is null, and nothing when nobody does', async () => {
      const name = context.name('force');
      await context.take(context.a, name);
      expect(await context.b.release({ name, owner: null })).toBe(true);
      expect(await context.a.find(name)).toBeNull();
      expect(await context.b.release({ name, owner: null })).toBe(false);
      expect(await context.b.release({ name: context.name('never-taken'), owner: randomUUID() })).toBe(false);
    });
  });

  describe('renew', () => {
    it("renews only for the holder's owner token, keeping its owner and fencing token", async () => {
      const name = context.name('renew');
      const first = await context.take(context.a, name, { expires: 30 });
      expect(await context.b.renew({ name, owner: randomUUID(), expires: 90, mode: 'extend' })).toBeNull();
      expect((await context.b.find(name))!.lockedUntil).toEqual(first.lockedUntil);

      const renewed = await context.b.renew({ name, owner: first.owner, expires: 90, mode: 'extend' });
      expect(renewed).toMatchObject({ name, owner: first.owner, fencingToken: first.fencingToken, lockedBy: first.lockedBy });
      expectSecondsLeft(renewed!.secondsLeft, 90);
      expect(await context.a.find(name)).toMatchObject({ owner: first.owner, fencingToken: first.fencingToken, lockedUntil: renewed!.lockedUntil });

      // A stale owner renews nothing, not even the lock that took the name over.
      expect(await context.a.release({ name, owner: first.owner })).toBe(true);
      const second = await context.take(context.b, name, { expires: 30 });
      for (const mode of ['extend', 'add', 'set'] as const) {
        expect(await context.a.renew({ name, owner: first.owner, expires: 90, mode })).toBeNull();
      }
      expect(await context.a.find(name)).toMatchObject({ owner: second.owner, lockedUntil: second.lockedUntil });
    });

    it('renews whoever holds the name when the owner is null, and nothing when nobody does', async () => {
      const name = context.name('renew-any');
      const held = await context.take(context.a, name, { expires: 30 });
      const renewed = await context.b.renew({ name, owner: null, expires: 90, mode: 'extend' });
      expect(renewed).toMatchObject({ owner: held.owner, fencingToken: held.fencingToken });
      expectSecondsLeft(renewed!.secondsLeft, 90);
      expect(await context.b.renew({ name: context.name('never-taken'), owner: null, expires: 90, mode: 'extend' })).toBeNull();
    });
  });
}
