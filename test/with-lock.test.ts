import { Controller, Get, HttpCode, INestApplication, Injectable, Param, Post, Query } from '@nestjs/common';
import { EventEmitter2, EventEmitterModule, OnEvent } from '@nestjs/event-emitter';
import { Cron, Interval, ScheduleModule, SchedulerRegistry, Timeout } from '@nestjs/schedule';
import type { AddressInfo } from 'node:net';
import { DataSource } from 'typeorm';
import { LockContext, LockedError, LockLostError, LockMgrError, LockService, WithLock } from '../lib';
import { createLockApp, deferred, dropLockTable, lockTestingModule, sleep, until } from './support/lock-app';
import { RecordingLogger } from './support/recording-logger';
import { describeEachDatabase, TestDatabase, uniqueName } from './support/test-databases';

/** What a locked method sees of its lock. */
function currentLock() {
  const { name, fencingToken, signal } = LockContext.current();
  return { name, fencingToken, aborted: signal.aborted };
}

/** Handlers of @nestjs/schedule and @nestjs/event-emitter, with @WithLock above and below their decorators. */
@Injectable()
class ScheduledJobs {
  /** How many times each handler ran, under which lock. */
  readonly runs = new Map<string, number>();

  private ran(): void {
    const { name } = LockContext.current();
    this.runs.set(name, (this.runs.get(name) ?? 0) + 1);
  }

  @Cron('* * * * * *', { name: 'cron-above', disabled: true })
  @WithLock('cron-above')
  async cronAbove() {
    this.ran();
  }

  @WithLock('cron-below')
  @Cron('* * * * * *', { name: 'cron-below', disabled: true })
  async cronBelow() {
    this.ran();
  }

  @Interval('interval-above', 200)
  @WithLock('interval-above')
  async intervalAbove() {
    this.ran();
  }

  @WithLock('interval-below')
  @Interval('interval-below', 200)
  async intervalBelow() {
    this.ran();
  }

  @Timeout('timeout-above', 20)
  @WithLock('timeout-above')
  async timeoutAbove() {
    this.ran();
  }

  @WithLock('timeout-below')
  @Timeout('timeout-below', 20)
  async timeoutBelow() {
    this.ran();
  }

  @OnEvent('order.paid')
  @WithLock('event-above')
  async eventAbove() {
    this.ran();
  }

  @WithLock('event-below')
  @OnEvent('order.paid')
  async eventBelow() {
    this.ran();
  }

  @Cron('* * * * * *', { name: 'cron-throws', disabled: true })
  @WithLock('cron-throws', { onLocked: 'throw' })
  async cronThrows() {
    this.ran();
  }

  @Cron('* * * * * *', { name: 'cron-own-error', disabled: true })
  @WithLock('cron-own-error')
  async cronOwnError() {
    throw new LockedError('a lock the job itself needed');
  }
}

@Controller('orders')
class OrdersController {
  @Post(':id/above')
  @HttpCode(202)
  @WithLock((id: string) => `order:${id}`)
  async above(@Param('id') id: string) {
    return { id, lock: currentLock().name };
  }

  @WithLock((id: string) => `order:${id}`)
  @Get(':id/below')
  @HttpCode(203)
  async below(@Param('id') id: string) {
    return { id, lock: currentLock().name };
  }
}

@Controller('payments')
class PaymentsController {
  /** Captures wait here until the test lets them finish. */
  gate = deferred();
  inside = 0;

  @Post(':id/capture')
  @WithLock((id: string) => `payment:${id}`)
  async capture(@Param('id') id: string, @Query('fail') fail?: string) {
    this.inside++;
    try {
      await this.gate.promise;
      if (fail) throw new Error('the payment provider is down');
      return { id, captured: true, fencingToken: currentLock().fencingToken };
    } finally {
      this.inside--;
    }
  }
}

/** A provider whose callers are other code: they get LockedError. */
@Injectable()
class Ledger {
  @WithLock('ledger')
  async post(gate?: Promise<void>) {
    await gate;
    return currentLock();
  }

  @WithLock('ledger', { onLocked: 'skip' })
  async postIfFree() {
    return 'posted';
  }

  @WithLock((account: unknown) => account as string)
  async byAccount(account: unknown) {
    return `posted to ${String(account)}`;
  }

  @WithLock('brief', { minHold: 1, expires: 30 })
  async brief() {
    await sleep(10);
    return currentLock().fencingToken;
  }

  @WithLock('long', { expires: 0.5 })
  async long(during: () => Promise<void>) {
    await during();
    return currentLock();
  }

  @WithLock('stolen', { expires: 0.9 })
  async stolen(started: () => void) {
    const { signal } = LockContext.current();
    started();
    await new Promise<void>((resolve) => {
      const giveUp = setTimeout(resolve, 10_000);
      signal.addEventListener('abort', () => {
        clearTimeout(giveUp);
        resolve();
      });
    });
    return signal.reason;
  }
}

interface TestApp {
  app: INestApplication;
  url: string;
  locks: LockService;
  logger: RecordingLogger;
}

async function startApp(database: TestDatabase, isolation: string): Promise<TestApp> {
  const moduleRef = await lockTestingModule(
    database,
    isolation,
    {},
    {
      imports: [ScheduleModule.forRoot(), EventEmitterModule.forRoot()],
      providers: [ScheduledJobs, Ledger],
      controllers: [OrdersController, PaymentsController],
    },
  ).compile();
  const logger = new RecordingLogger();
  const app = moduleRef.createNestApplication({ logger });
  await app.listen(0, '127.0.0.1');
  const { port } = app.getHttpServer().address() as AddressInfo;
  return { app, url: `http://127.0.0.1:${port}`, locks: app.get(LockService), logger };
}

async function request(url: string, method = 'POST'): Promise<{ status: number; body: unknown }> {
  const response = await fetch(url, { method });
  const text = await response.text();
  return { status: response.status, body: text ? JSON.parse(text) : undefined };
}

describe('@WithLock when it decorates', () => {
  it('checks its options and names the one at fault', () => {
    expect(() => WithLock('x', { expires: -1 })).toThrow(new RangeError('@WithLock option expires must be at least 0 seconds, got -1.'));
    expect(() => WithLock('x', { wait: NaN })).toThrow(/@WithLock option wait must be a finite number/);
    expect(() => WithLock('x', { minHold: '5' as never })).toThrow(TypeError);
    expect(() => WithLock('x', { minHold: '5' as never })).toThrow(/@WithLock option minHold must be a number of seconds/);
    expect(() => WithLock('x', { autoRenew: 1 as never })).toThrow(/@WithLock option autoRenew must be true or false/);
    expect(() => WithLock('x', { onLocked: 'ignore' as never })).toThrow(RangeError);
    expect(() => WithLock('x', { onLocked: 'ignore' as never })).toThrow(/@WithLock option onLocked must be one of 'skip', 'throw'/);
    expect(() => WithLock('x', { lockedBy: 'me' } as never)).toThrow(/@WithLock options has an unknown option "lockedBy"/);
    expect(() => WithLock('')).toThrow(new RangeError('@WithLock name must not be empty.'));
    expect(() => WithLock(5 as never)).toThrow(/@WithLock name must be a string, got number 5/);
  });

  it('refuses what is not an instance method', () => {
    expect(() => {
      class Job {
        @WithLock('static')
        static run() {}
      }
      return Job;
    }).toThrow(/@WithLock decorates instance methods; run is not one/);
  });

  it('keeps the method’s name, and needs an instance made by Nest', async () => {
    expect(Ledger.prototype.post.name).toBe('post');
    await expect(new Ledger().post()).rejects.toThrow(/@WithLock on Ledger\.post has no LockService: create Ledger through Nest/);
  });
});

describeEachDatabase('@WithLock', (database) => {
  const isolation = uniqueName('withlock');
  let test: TestApp;
  let jobs: ScheduledJobs;
  let ledger: Ledger;
  let payments: PaymentsController;

  beforeAll(async () => {
    test = await startApp(database, isolation);
    jobs = test.app.get(ScheduledJobs);
    ledger = test.app.get(Ledger);
    payments = test.app.get(PaymentsController);
  });
  afterAll(async () => {
    await test?.app.close();
    await dropLockTable(database, isolation);
  });

  describe('on scheduled and event handlers, above or below their decorators', () => {
    it('@nestjs/schedule finds the cron jobs, and a tick runs the method under its lock', async () => {
      const registry = test.app.get(SchedulerRegistry);
      for (const name of ['cron-above', 'cron-below']) {
        const job = registry.getCronJob(name);
        expect(job.cronTime.source).toBe('* * * * * *');
        await job.fireOnTick();
        await until(() => jobs.runs.get(name) === 1);
      }
    });

    it('@nestjs/schedule finds the intervals and timeouts, which run under their locks', async () => {
      const registry = test.app.get(SchedulerRegistry);
      expect(registry.getIntervals()).toEqual(expect.arrayContaining(['interval-above', 'interval-below']));
      expect(registry.getTimeouts()).toEqual(expect.arrayContaining(['timeout-above', 'timeout-below']));
      await until(() => ['interval-above', 'interval-below'].every((name) => (jobs.runs.get(name) ?? 0) >= 2));
      await until(() => ['timeout-above', 'timeout-below'].every((name) => jobs.runs.get(name) === 1));
    });

    it('@nestjs/event-emitter finds the listeners, which run under their locks', async () => {
      await test.app.get(EventEmitter2).emitAsync('order.paid', { id: 1 });
      expect(jobs.runs.get('event-above')).toBe(1);
      expect(jobs.runs.get('event-below')).toBe(1);
    });

    it('skip the run, with a debug line naming the lock, when the lock is held elsewhere', async () => {
      const names = ['cron-above', 'cron-below', 'event-above', 'event-below'] as const;
      const held = await Promise.all(names.map((name) => test.locks.getLock(name, { expires: 60 })));
      // The cron methods ran a tick of this second already, which they would skip whatever the lock: the
      // calls come as if their clock were an hour ahead, at ticks nobody ran.
      const clock = jest.spyOn(Date, 'now').mockReturnValue(Date.now() + 3_600_000);
      try {
        const before = names.map((name) => jobs.runs.get(name) ?? 0);
        await expect(jobs.cronAbove()).resolves.toBeUndefined();
        await expect(jobs.cronBelow()).resolves.toBeUndefined();
        await expect(jobs.eventAbove()).resolves.toBeUndefined();
        await expect(jobs.eventBelow()).resolves.toBeUndefined();
        await test.app.get(SchedulerRegistry).getCronJob('cron-above').fireOnTick();
        await sleep(50);
        expect(names.map((name) => jobs.runs.get(name) ?? 0)).toEqual(before);
        const skipped = test.logger.lines('debug', 'WithLock');
        expect(skipped).toEqual(expect.arrayContaining([expect.stringMatching(/^Skipped ScheduledJobs\.cronBelow: Lock "cron-below" is held/)]));
        expect(skipped).toEqual(expect.arrayContaining([expect.stringMatching(/^Skipped ScheduledJobs\.eventAbove: Lock "event-above" is held/)]));
        expect(test.logger.lines('error')).toEqual([]);
      } finally {
        clock.mockRestore();
        await Promise.all(held.map((lock) => test.locks.unlock(lock)));
      }
    });

    it("throw LockedError instead with onLocked: 'throw'", async () => {
      const held = await test.locks.getLock('cron-throws', { expires: 60 });
      try {
        await expect(jobs.cronThrows()).rejects.toMatchObject({ name: 'LockedError', lockName: 'cron-throws' });
      } finally {
        await test.locks.unlock(held);
      }
    });

    it('pass on a LockedError the method throws itself: that is a failure, not a skip', async () => {
      await expect(jobs.cronOwnError()).rejects.toMatchObject({ name: 'LockedError', lockName: 'a lock the job itself needed' });
      expect(await test.locks.isLocked('cron-own-error')).toBe(false);
    });
  });

  describe('on route handlers, above or below the route decorators', () => {
    it('keeps the route, its path and its status code, and runs the handler under its lock', async () => {
      expect(await request(`${test.url}/orders/7/above`)).toEqual({ status: 202, body: { id: '7', lock: 'order:7' } });
      expect(await request(`${test.url}/orders/8/below`, 'GET')).toEqual({ status: 203, body: { id: '8', lock: 'order:8' } });
    });

    it('answers 423 Locked with a JSON body naming the lock when it is held elsewhere', async () => {
      const held = await Promise.all(['order:7', 'order:8'].map((name) => test.locks.getLock(name, { expires: 60 })));
      try {
        for (const [path, method, lock] of [['orders/7/above', 'POST', 'order:7'], ['orders/8/below', 'GET', 'order:8']]) {
          expect(await request(`${test.url}/${path}`, method)).toEqual({
            status: 423,
            body: { statusCode: 423, error: 'Locked', message: expect.stringContaining(`"${lock}"`), lock },
          });
        }
      } finally {
        await Promise.all(held.map((lock) => test.locks.unlock(lock)));
      }
    });
  });

  describe('guarding a resource per request', () => {
    beforeEach(() => {
      payments.gate = deferred();
    });
    afterEach(() => {
      // A failed test must not leave a request holding its lock: the app's shutdown would wait for it.
      payments.gate.resolve();
    });

    it('lets one of two concurrent requests for one payment through and answers the other 423', async () => {
      const first = request(`${test.url}/payments/1/capture`);
      const second = request(`${test.url}/payments/1/capture`);
      const answered = await Promise.race([first, second]);
      expect(answered).toEqual({
        status: 423,
        body: { statusCode: 423, error: 'Locked', message: expect.stringContaining('"payment:1"'), lock: 'payment:1' },
      });
      payments.gate.resolve();
      const results = await Promise.all([first, second]);
      expect(results.map((result) => result.status).sort()).toEqual([201, 423]);
      expect(results.find((result) => result.status === 201)!.body).toMatchObject({ id: '1', captured: true });
      expect(await test.locks.isLocked('payment:1')).toBe(false);
    });

    it('lets concurrent requests for different payments all through', async () => {
      const captures = [2, 3].map((id) => request(`${test.url}/payments/${id}/capture`));
      // Both handlers hold their locks at the same time before either may finish.
      await until(() => payments.inside === 2);
      payments.gate.resolve();
      const results = await Promise.all(captures);
      expect(results.map((result) => result.status)).toEqual([201, 201]);
      const tokens = results.map((result) => (result.body as { fencingToken: number }).fencingToken);
      expect(tokens[0]).not.toBe(tokens[1]);
    });

    it('releases the lock of a handler that throws', async () => {
      payments.gate.resolve();
      expect((await request(`${test.url}/payments/4/capture?fail=1`)).status).toBe(500);
      expect(await test.locks.isLocked('payment:4')).toBe(false);
      expect((await request(`${test.url}/payments/4/capture`)).status).toBe(201);
    });
  });

  describe('for other callers', () => {
    it('throws LockedError when the lock is held elsewhere, or skips with onLocked: skip', async () => {
      const held = await test.locks.getLock('ledger', { expires: 60 });
      try {
        await expect(ledger.post()).rejects.toBeInstanceOf(LockedError);
        await expect(ledger.post()).rejects.toMatchObject({ lockName: 'ledger' });
        await expect(ledger.postIfFree()).resolves.toBeUndefined();
      } finally {
        await test.locks.unlock(held);
      }
      await expect(ledger.postIfFree()).resolves.toBe('posted');
    });

    it('holds the lock until the method’s promise settles, with the lock as LockContext', async () => {
      const gate = deferred();
      const posting = ledger.post(gate.promise);
      await until(() => test.locks.isLocked('ledger'));
      await sleep(100);
      expect(await test.locks.isLocked('ledger')).toBe(true);
      gate.resolve();
      const seen = await posting;
      expect(seen).toMatchObject({ name: 'ledger', aborted: false });
      expect(seen.fencingToken).toBeGreaterThan(0);
      expect(await test.locks.isLocked('ledger')).toBe(false);
    });

    it('builds the name from the arguments and checks it before taking any lock', async () => {
      await expect(ledger.byAccount('account:9')).resolves.toBe('posted to account:9');
      await expect(ledger.byAccount('')).rejects.toThrow(new RangeError('@WithLock of Ledger.byAccount name must not be empty.'));
      await expect(ledger.byAccount(9)).rejects.toThrow(new TypeError('@WithLock of Ledger.byAccount name must be a string, got number 9.'));
      await expect(ledger.byAccount('x'.repeat(256))).rejects.toThrow(RangeError);
    });

    it('with minHold, keeps the lock of a 10 ms job for minHold seconds', async () => {
      const token = await ledger.brief();
      const [lock] = (await test.locks.listLocks()).filter((held) => held.name === 'brief');
      expect(lock.fencingToken).toBe(token);
      expect(lock.expiresSeconds).toBeGreaterThan(0.5);
      expect(lock.expiresSeconds).toBeLessThanOrEqual(1);
      await expect(ledger.brief()).rejects.toBeInstanceOf(LockedError);
      await until(async () => !(await test.locks.isLocked('brief')), 5000);
      expect(await ledger.brief()).toBeGreaterThan(token);
    });

    it('renews the lock while a job runs three times longer than expires, keeping it exclusive', async () => {
      // A second app on the same lock table, as another instance of the service would be.
      const contender = await createLockApp(database, isolation);
      try {
        let attempts = 0;
        const seen = await ledger.long(async () => {
          const endAt = performance.now() + 1500;
          while (performance.now() < endAt) {
            expect(await contender.locks.tryLock('long')).toBeNull();
            attempts++;
            await sleep(50);
          }
        });
        expect(attempts).toBeGreaterThan(5);
        expect(seen).toMatchObject({ name: 'long', aborted: false });
        expect(await contender.locks.isLocked('long')).toBe(false);
      } finally {
        await contender.close();
      }
    });

    it('aborts LockContext.current().signal when its lock row is deleted by hand', async () => {
      const started = deferred();
      const running = ledger.stolen(started.resolve);
      await started.promise;
      await test.app.get(DataSource).createQueryBuilder().delete().from(isolation).where('name = :name', { name: 'stolen' }).execute();
      const reason = await running;
      expect(reason).toBeInstanceOf(LockLostError);
      expect(reason).toMatchObject({ lockName: 'stolen' });
    });

    it('throws from LockContext.current() outside a locked method', () => {
      expect(() => LockContext.current()).toThrow(/outside a @WithLock method or withLock work/);
    });
  });

  it('at shutdown, finishes a tick that fired before it, skips one that fires late and refuses other calls, saying why', async () => {
    const closedIsolation = uniqueName('withlock_closed');
    const closed = await startApp(database, closedIsolation);
    try {
      const closedJobs = closed.app.get(ScheduledJobs);
      const closedLedger = closed.app.get(Ledger);
      // A tick that fires as shutdown begins takes two locks (its tick's record, then its lock): shutdown waits for both.
      const firing = closedJobs.cronAbove();
      await closed.app.close();
      await expect(firing).resolves.toBeUndefined();
      expect(closedJobs.runs.get('cron-above')).toBe(1);
      // As a timer that fired just before the scheduler stopped, and called the method after the module closed.
      await expect(closedJobs.cronAbove()).resolves.toBeUndefined();
      await expect(closedJobs.intervalBelow()).resolves.toBeUndefined();
      expect(closedJobs.runs.get('cron-above')).toBe(1);
      expect(closed.logger.lines('debug', 'WithLock')).toEqual(
        expect.arrayContaining(['Skipped ScheduledJobs.cronAbove: the app is shutting down.', 'Skipped ScheduledJobs.intervalBelow: the app is shutting down.']),
      );
      await expect(closedLedger.post()).rejects.toThrow(`Could not acquire lock "ledger": the app's lock module has shut down.`);
      await expect(closed.locks.getLock('ledger')).rejects.toThrow(LockMgrError);
      expect(closed.logger.lines('error')).toEqual([]);
    } finally {
      await dropLockTable(database, closedIsolation);
    }
  });

  it('uses the LockService of the app that made the instance, when two apps share the process', async () => {
    const otherIsolation = uniqueName('withlock_other');
    const other = await startApp(database, otherIsolation);
    try {
      const held = await test.locks.getLock('ledger', { expires: 60 });
      await expect(ledger.post()).rejects.toBeInstanceOf(LockedError);
      const gate = deferred();
      const posting = other.app.get(Ledger).post(gate.promise);
      await until(() => other.locks.isLocked('ledger'));
      const inOther = (await other.locks.listLocks()).find((lock) => lock.name === 'ledger')!;
      gate.resolve();
      expect((await posting).fencingToken).toBe(inOther.fencingToken);
      expect((await test.locks.listLocks()).find((lock) => lock.name === 'ledger')!.fencingToken).toBe(held.fencingToken);
      await test.locks.unlock(held);
    } finally {
      await other.app.close();
      await dropLockTable(database, otherIsolation);
    }
  });
});
