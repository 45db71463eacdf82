import type { LockDialect, SetLockStep } from '../../lib/dialects/lock-dialect';
import type { LockRecord } from '../../lib/lock.entity';
import type { ContractContext } from './contract-store';

/** The live locks whose names start with `prefix`, in the order `list` gave them. */
async function listed(dialect: LockDialect, prefix: string): Promise<string[]> {
  return (await dialect.list()).map((lock) => lock.name).filter((name) => name.startsWith(prefix));
}

export function expiryContract(context: ContractContext): void {
  describe('expired locks', () => {
    it('are absent for find, list, release, renew and setLocks, and acquire takes them over', async () => {
      const prefix = `${context.name('expired')}-`;
      const name = (label: string) => `${prefix}${label}`;
      const expired = new Map<string, LockRecord>();
      for (const label of ['find', 'release', 'force', 'extend', 'add', 'set', 'renew-any', 'set-locks', 'acquire']) {
        expired.set(label, await context.takeBriefly(context.a, name(label)));
      }
      await context.take(context.a, name('live'));
      await context.expire();

      expect(await context.b.find(name('find'))).toBeNull();
      expect(await listed(context.b, prefix)).toEqual([name('live')]);
      expect(await context.b.release({ name: name('release'), owner: expired.get('release')!.owner })).toBe(false);
      expect(await context.b.release({ name: name('force'), owner: null })).toBe(false);
      for (const mode of ['extend', 'add', 'set'] as const) {
        expect(await context.b.renew({ name: name(mode), owner: expired.get(mode)!.owner, expires: 60, mode })).toBeNull();
        expect(await context.b.find(name(mode))).toBeNull();
      }
      expect(await context.b.renew({ name: name('renew-any'), owner: null, expires: 60, mode: 'extend' })).toBeNull();

      const created = await context.b.setLocks({ locks: [context.request(name('set-locks'))], fail: true, renew: true, create: true });
      expect(created).toMatchObject({ steps: [{ name: name('set-locks'), existing: null, action: 'create' }] });
      expect((created as { steps: SetLockStep[] }).steps[0].lock!.fencingToken).toBeGreaterThan(expired.get('set-locks')!.fencingToken);

      const takeover = await context.b.acquire(context.request(name('acquire'), { lockedBy: 'next' }));
      expect(takeover).toMatchObject({ acquired: true, lock: { name: name('acquire'), lockedBy: 'next' } });
      const lock = (takeover as { lock: LockRecord }).lock;
      expect(lock.fencingToken).toBeGreaterThan(expired.get('acquire')!.fencingToken);
      expect(await context.a.find(name('acquire'))).toMatchObject({ owner: lock.owner, lockedBy: 'next' });
    });

    it('are deleted by deleteExpired, up to its limit, which never deletes a live lock', async () => {
      // A table of its own: deleteExpired counts every expired row of the table.
      const table = await context.store.createTable();
      const dialect = await context.store.openDialect(table);
      try {
        for (const label of ['x1', 'x2', 'x3']) await context.takeBriefly(dialect, label);
        await context.take(dialect, 'live');
        await context.take(dialect, 'forever', { expires: null });
        await context.expire();
        expect(await dialect.deleteExpired(2)).toBe(2);
        expect(await dialect.deleteExpired(10)).toBe(1);
        expect(await dialect.deleteExpired(10)).toBe(0);
        expect((await dialect.list()).map((lock) => lock.name)).toEqual(['forever', 'live']);
      } finally {
        await dialect.close();
        await context.store.dropTable(table);
      }
    });
  });

  describe('list', () => {
    it('returns every live lock, ordered by name', async () => {
      const prefix = `${context.name('list')}-`;
      const labels = ['b', 'a2', 'c', 'a10'];
      for (const label of labels) await context.take(context.b, `${prefix}${label}`, { expires: label === 'c' ? null : 60 });
      expect(await listed(context.a, prefix)).toEqual(['a10', 'a2', 'b', 'c'].map((label) => `${prefix}${label}`));
      const lock = (await context.a.list()).find((found) => found.name === `${prefix}c`);
      expect(lock).toMatchObject({ lockedUntil: null, secondsLeft: null, lockedBy: 'contract' });
    });

    if (context.store.ordersByCodePoint) {
      it('orders names by code point, beyond U+FFFF too', async () => {
        const prefix = `${context.name('unicode')}-`;
        // In UTF-16 order the emoji (a surrogate pair) would come before U+FF5E.
        const ordered = ['Z', 'z', '\u00e9', '\u4e2d', '\uff5e', '\u{1f600}'].map((label) => `${prefix}${label}`);
        for (const name of [...ordered].reverse()) await context.take(context.a, name);
        expect(await listed(context.b, prefix)).toEqual(ordered);
      });
    }
  });
}
