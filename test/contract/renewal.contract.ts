import type { ContractContext } from './contract-store';
import { expectSecondsLeft } from './contract-store';

export function renewalContract(context: ContractContext): void {
  describe('renewal modes', () => {
    it('extend moves the expiry to now + expires, and never shortens it', async () => {
      const name = context.name('extend');
      const { owner } = await context.take(context.a, name, { expires: 60 });
      const longer = await context.b.renew({ name, owner, expires: 120, mode: 'extend' });
      expectSecondsLeft(longer!.secondsLeft, 120);
      const shorter = await context.b.renew({ name, owner, expires: 10, mode: 'extend' });
      expect(shorter!.lockedUntil).toEqual(longer!.lockedUntil);
      expect((await context.a.find(name))!.lockedUntil).toEqual(longer!.lockedUntil);
    });

    it('add adds expires to the current expiry', async () => {
      const name = context.name('add');
      const { owner, lockedUntil } = await context.take(context.a, name, { expires: 60 });
      const added = await context.b.renew({ name, owner, expires: 30, mode: 'add' });
      expect(added!.lockedUntil!.getTime()).toBe(lockedUntil!.getTime() + 30_000);
      expectSecondsLeft(added!.secondsLeft, 90);
      const again = await context.b.renew({ name, owner, expires: 0.5, mode: 'add' });
      expect(again!.lockedUntil!.getTime()).toBe(lockedUntil!.getTime() + 30_500);
    });

    it('set puts the expiry at exactly now + expires, shorter or not', async () => {
      const name = context.name('set');
      const { owner } = await context.take(context.a, name, { expires: 60 });
      const shorter = await context.b.renew({ name, owner, expires: 10, mode: 'set' });
      expectSecondsLeft(shorter!.secondsLeft, 10);
      expect((await context.a.find(name))!.lockedUntil).toEqual(shorter!.lockedUntil);
      const longer = await context.b.renew({ name, owner, expires: 100, mode: 'set' });
      expectSecondsLeft(longer!.secondsLeft, 100);
    });

    it('reports the lock it renewed, even when the new lease has run out by the time the answer comes', async () => {
      for (const byName of [false, true]) {
        const name = context.name('set-brief');
        const { owner, fencingToken } = await context.take(context.a, name, { expires: 60 });
        // One microsecond: over before any store can answer, as a short lease is on a loaded machine.
        const renewed = await context.b.renew({ name, owner: byName ? null : owner, expires: 0.000001, mode: 'set' });
        expect(renewed).toMatchObject({ name, owner, fencingToken });
        expect(renewed!.secondsLeft).toBeLessThanOrEqual(0.001);
      }
    });

    it('a lock that never expires stays so under extend and add; set gives it an expiry', async () => {
      const name = context.name('forever');
      const { owner } = await context.take(context.a, name, { expires: null });
      for (const mode of ['extend', 'add'] as const) {
        expect(await context.b.renew({ name, owner, expires: 10, mode })).toMatchObject({ lockedUntil: null, secondsLeft: null });
      }
      const set = await context.b.renew({ name, owner, expires: 10, mode: 'set' });
      expectSecondsLeft(set!.secondsLeft, 10);
      expectSecondsLeft((await context.a.find(name))!.secondsLeft, 10);
    });

    it('expires null makes the lock never expire, in every mode', async () => {
      for (const mode of ['extend', 'add', 'set'] as const) {
        const name = context.name(`to-forever-${mode}`);
        const { owner, fencingToken } = await context.take(context.a, name, { expires: 60 });
        expect(await context.b.renew({ name, owner, expires: null, mode })).toMatchObject({ lockedUntil: null, secondsLeft: null, fencingToken });
        expect(await context.a.find(name)).toMatchObject({ lockedUntil: null, secondsLeft: null, owner });
      }
    });
  });
}
