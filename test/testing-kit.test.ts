import { Controller, Injectable, Param, Post } from '@nestjs/common';
import { Cron, CronExpression } from '@nestjs/schedule';
import { Test, TestingModule } from '@nestjs/testing';
import type { AddressInfo } from 'node:net';
import { LeaderOnly, LockContext, LockedError, LockLostError, LockService, WithLock } from '../lib';
import { LockMgrTestingModule, ManualLockClock, MemoryLockStore } from '../lib/testing';
import { deferred, until } from './support/lock-app';

/** A user's cron job: it must run on one instance of the cluster at a time. */
@Injectable()
class NightlyReport {
  readonly tokens: number[] = [];

  @Cron(CronExpression.EVERY_MINUTE)
  @WithLock('reports:nightly', { expires: 300 })
  async run(): Promise<void> {
    this.tokens.push(LockContext.current().fencingToken);
  }
}

/** A user's service that takes a lock by hand, django-lockmgr style. */
@Injectable()
class PaymentCapture {
  constructor(private readonly locks: LockService) {}

  async capture(id: string): Promise<number> {
    const lock = await this.locks.getLock(`payment:${id}`, { expires: 600 });
    return lock.fencingToken;
  }
}

/** A user's route: one capture of a payment at a time, whichever instance the request reaches. */
@Controller('payments')
class PaymentsController {
  @Post(':id/capture')
  @WithLock((id: string) => `payment:${id}`)
  capture(@Param('id') id: string) {
    return { id, captured: true };
  }
}

/** A user's job that must run on the leader only. */
@Injectable()
class SearchIndexer {
  runs = 0;

  @LeaderOnly('indexer', { expires: 15 })
  tick(): void {
    this.runs++;
  }
}

async function testingApp(options: Parameters<typeof LockMgrTestingModule.forRoot>[0]): Promise<TestingModule> {
  const moduleRef = await Test.createTestingModule({
    imports: [LockMgrTestingModule.forRoot(options)],
    providers: [NightlyReport, PaymentCapture, SearchIndexer],
  }).compile();
  return moduleRef.init();
}

describe('nestjs-lockmgr/testing: a user tests lock code with no database', () => {
  let clock: ManualLockClock;
  let app: TestingModule;

  beforeEach(async () => {
    clock = new ManualLockClock(new Date('2026-01-01T00:00:00Z'));
    app = await testingApp({ clock });
  });
  afterEach(() => app.close());

  it('runs a @WithLock @Cron job once per tick of the clock, and skips it while the lock is held', async () => {
    const job = app.get(NightlyReport);
    await job.run();
    expect(job.tokens).toHaveLength(1);
    await expect(job.run()).resolves.toBeUndefined(); // the tick of 00:00 ran already
    expect(job.tokens).toHaveLength(1);

    clock.advance(60); // the tick of 00:01
    const held = await app.get(LockService).getLock('reports:nightly');
    await expect(job.run()).resolves.toBeUndefined();
    expect(job.tokens).toHaveLength(1);

    await app.get(LockService).unlock(held);
    await job.run();
    expect(job.tokens).toHaveLength(2);
    expect(job.tokens[1]).toBeGreaterThan(held.fencingToken);
  });

  it('lets a getLock lease run out when the clock moves past it', async () => {
    const payments = app.get(PaymentCapture);
    const first = await payments.capture('42');
    await expect(payments.capture('42')).rejects.toThrow(LockedError);
    clock.advance(599);
    await expect(payments.capture('42')).rejects.toThrow(LockedError);
    clock.advance(2);
    expect(await payments.capture('42')).toBeGreaterThan(first);
  });

  it('reads expiry from the clock, not from Date.now()', async () => {
    const lock = await app.get(LockService).getLock('clocked', { expires: 60 });
    expect(lock.lockedUntil).toEqual(new Date('2026-01-01T00:01:00Z'));
    clock.advance(30);
    const [listed] = await app.get(LockService).listLocks();
    expect(listed.expiresSeconds).toBeCloseTo(30, 0);
  });

  it('hands a released lock to a waiter at once, and wakes a waiter when the clock ends the lease', async () => {
    const locks = app.get(LockService);
    const held = await locks.getLock('queue', { expires: 3600 });
    const startedAt = performance.now();
    const waiting = locks.getLock('queue', { wait: 30 });
    await locks.unlock(held);
    await waiting;
    expect(performance.now() - startedAt).toBeLessThan(1000);

    await locks.getLock('lease', { expires: 3600 });
    const second = locks.getLock('lease', { wait: 30 });
    clock.advance(3601);
    await expect(second).resolves.toMatchObject({ name: 'lease' });
  });

  it('lets handles and managers see a lease run out as the clock moves past it', async () => {
    const locks = app.get(LockService);
    const lock = await locks.getLock('handle', { expires: 60 });
    clock.advance(59);
    expect(lock.expired).toBe(false);
    clock.advance(2);
    expect(lock.expired).toBe(true);
    expect(lock.expiresSeconds).toBeCloseTo(-1, 3);

    // Moving the clock past the lease of a held lock is a process that stalled that long: the lock is lost.
    const manager = await locks.manager('stalled', { expires: 0.3 });
    clock.advance(1);
    await until(() => manager.signal.aborted);
    expect(manager.signal.reason).toBeInstanceOf(LockLostError);
    await manager.release();
  });

  it('keeps a lock for minHold by the clock', async () => {
    const locks = app.get(LockService);
    await locks.withLock('short job', () => clock.advance(20), { minHold: 30 });
    clock.advance(9);
    expect(await locks.isLocked('short job')).toBe(true);
    clock.advance(2);
    expect(await locks.isLocked('short job')).toBe(false);
  });

  it('gives LockContext, managers and fencing tokens as the databases do', async () => {
    const locks = app.get(LockService);
    const seen = await locks.withLock('work', async (manager) => {
      expect(await manager.lock('other', { ret: true })).toBe(true);
      return { context: LockContext.current().name, names: manager.locks.map((lock) => lock.name) };
    });
    expect(seen).toEqual({ context: 'work', names: ['work', 'other'] });
    expect(await locks.isLocked('work')).toBe(false);
    expect(await locks.isLocked('other')).toBe(false);
  });

  it('runs a @LeaderOnly job on the leader, skips it once the lease ran out by the clock, and runs it again in the next term', async () => {
    const indexer = app.get(SearchIndexer);
    const leadership = app.get(LockService).lead('indexer', { expires: 15 });
    await leadership.elected();
    const firstToken = leadership.fencingToken!;
    indexer.tick();
    expect(indexer.runs).toBe(1);

    clock.advance(16);
    expect(leadership.isLeader).toBe(false);
    indexer.tick();
    expect(indexer.runs).toBe(1);

    // Still campaigning: the lease is free, so this instance leads again, in a new term.
    await leadership.elected();
    expect(leadership.fencingToken).toBeGreaterThan(firstToken);
    indexer.tick();
    expect(indexer.runs).toBe(2);
  });

  it('refuses bad options by name', () => {
    expect(() => LockMgrTestingModule.forRoot({ defaultExpires: -1 })).toThrow('LockMgrTestingModule option defaultExpires');
    expect(() => LockMgrTestingModule.forRoot({ dataSource: 42 } as never)).toThrow('LockMgrTestingModule option dataSource');
    expect(() => LockMgrTestingModule.forRoot({ poolsize: 2 } as never)).toThrow('unknown option "poolsize"');
    expect(() => new ManualLockClock().advance(-1)).toThrow(RangeError);
  });
});

describe('nestjs-lockmgr/testing: a locked route over HTTP', () => {
  it('answers 423 Locked while the lock is held, and 201 once it is free', async () => {
    const moduleRef = await Test.createTestingModule({
      imports: [LockMgrTestingModule.forRoot()],
      controllers: [PaymentsController],
    }).compile();
    const app = moduleRef.createNestApplication();
    await app.listen(0, '127.0.0.1');
    try {
      const { port } = app.getHttpServer().address() as AddressInfo;
      const capture = () => fetch(`http://127.0.0.1:${port}/payments/42/capture`, { method: 'POST' });
      const held = await app.get(LockService).getLock('payment:42');
      const refused = await capture();
      expect(refused.status).toBe(423);
      expect(await refused.json()).toMatchObject({ statusCode: 423, lock: 'payment:42' });
      await app.get(LockService).unlock(held);
      const accepted = await capture();
      expect(accepted.status).toBe(201);
      expect(await accepted.json()).toEqual({ id: '42', captured: true });
    } finally {
      await app.close();
    }
  });
});

describe('nestjs-lockmgr/testing: two instances of an app on one store', () => {
  it('skips a job on one instance while the other holds its lock', async () => {
    const store = new MemoryLockStore(new ManualLockClock());
    const [one, two] = await Promise.all([testingApp({ store }), testingApp({ store })]);
    try {
      const started = deferred();
      const finish = deferred();
      const running = one.get(LockService).withLock('reports:nightly', async () => {
        started.resolve();
        await finish.promise;
      });
      await started.promise;
      await two.get(NightlyReport).run();
      expect(two.get(NightlyReport).tokens).toEqual([]);
      finish.resolve();
      await running;
      await two.get(NightlyReport).run();
      expect(two.get(NightlyReport).tokens).toHaveLength(1);
    } finally {
      await Promise.all([one.close(), two.close()]);
    }
  });

  it('lets go of the locks of an app that closes, and leaves the store to the other', async () => {
    const store = new MemoryLockStore();
    const [one, two] = await Promise.all([testingApp({ store }), testingApp({ store })]);
    const manager = await one.get(LockService).manager('held-by-one');
    expect(await two.get(LockService).isLocked('held-by-one')).toBe(true);
    await one.close();
    await until(async () => !(await two.get(LockService).isLocked('held-by-one')));
    expect(manager.locks).toEqual([]);
    await expect(two.get(LockService).getLock('after-close')).resolves.toMatchObject({ name: 'after-close' });
    await two.close();
  });
});
