import { types } from 'node:util';
import type { ContractContext } from './contract-store';

/** What "at once" means for a woken sleeper: far less than the sleeps' timeouts, with room for a slow machine. */
const PROMPTLY_MS = 1000;
const LONG_SLEEP_MS = 20_000;

/** How long `sleeping` took to settle. */
async function settleTime(sleeping: Promise<unknown>): Promise<number> {
  const from = performance.now();
  await sleeping;
  return performance.now() - from;
}

export function releaseWaitingContract(context: ContractContext): void {
  describe('subscribe', () => {
    it('ends a sleep at once when this instance releases the name', async () => {
      const name = context.name('wake');
      const { owner } = await context.take(context.a, name);
      const waiting = context.a.subscribe(context.request(name));
      try {
        const sleeping = waiting.sleep(LONG_SLEEP_MS);
        const releasing = context.a.release({ name, owner });
        expect(await settleTime(sleeping)).toBeLessThan(PROMPTLY_MS);
        expect(await releasing).toBe(true);
      } finally {
        waiting.close();
      }
    });

    it('keeps a release that comes between sleeps for the next sleep', async () => {
      const name = context.name('between');
      const { owner } = await context.take(context.a, name);
      const waiting = context.a.subscribe(context.request(name));
      try {
        expect(await context.a.release({ name, owner })).toBe(true);
        expect(await settleTime(waiting.sleep(LONG_SLEEP_MS))).toBeLessThan(PROMPTLY_MS);
      } finally {
        waiting.close();
      }
    });

    if (context.store.announcesReleases) {
      it('ends a sleep at once when another instance releases the name', async () => {
        expect(context.b.announcesReleases).toBe(true);
        const name = context.name('wake-elsewhere');
        const { owner } = await context.take(context.a, name);
        const waiting = context.b.subscribe(context.request(name));
        try {
          let woken = false;
          const sleeping = waiting.sleep(LONG_SLEEP_MS).then(() => (woken = true));
          // The sleeper settles in (and announces its interest) before the release.
          await new Promise((resolve) => setTimeout(resolve, 200));
          expect(woken).toBe(false);
          expect(await context.a.release({ name, owner })).toBe(true);
          expect(await settleTime(sleeping)).toBeLessThan(PROMPTLY_MS);
        } finally {
          waiting.close();
        }
      });
    }

    it('ends a sleep after its timeout when nothing is released', async () => {
      const name = context.name('timeout');
      await context.take(context.a, name);
      const waiting = context.b.subscribe(context.request(name));
      try {
        const slept = await settleTime(waiting.sleep(150));
        expect(slept).toBeGreaterThanOrEqual(140);
        expect(slept).toBeLessThan(150 + PROMPTLY_MS);
      } finally {
        waiting.close();
      }
    });

    it('rejects a sleep with the reason of its signal, aborted before or during it', async () => {
      const name = context.name('abort');
      await context.take(context.a, name);
      const waiting = context.b.subscribe(context.request(name));
      try {
        const reason = new Error('stop waiting');
        await expect(waiting.sleep(LONG_SLEEP_MS, AbortSignal.abort(reason))).rejects.toBe(reason);
        const controller = new AbortController();
        const sleeping = waiting.sleep(LONG_SLEEP_MS, controller.signal);
        setTimeout(() => controller.abort(reason), 50);
        const from = performance.now();
        await expect(sleeping).rejects.toBe(reason);
        expect(performance.now() - from).toBeLessThan(PROMPTLY_MS);
      } finally {
        waiting.close();
      }
    });
  });

  describe('close', () => {
    it('makes every later call reject', async () => {
      const dialect = await context.store.openDialect(context.table);
      await dialect.close();
      const name = context.name('closed');
      const outcomes = await Promise.allSettled([
        dialect.ensureTable(),
        dialect.inspectTable(),
        dialect.acquire(context.request(name)),
        dialect.release({ name, owner: null }),
        dialect.renew({ name, owner: null, expires: 60, mode: 'extend' }),
        dialect.find(name),
        dialect.list(),
        dialect.deleteExpired(10),
        dialect.setLocks({ locks: [context.request(name)], fail: false, renew: true, create: true }),
      ]);
      // Errors of native drivers come from another realm than the tests' `Error`.
      for (const outcome of outcomes) expect(outcome.status === 'rejected' && types.isNativeError(outcome.reason)).toBe(true);
      expect(await context.a.find(name)).toBeNull();
    });
  });
}
