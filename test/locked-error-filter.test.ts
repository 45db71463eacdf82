import { Controller, INestApplication, Param, Post } from '@nestjs/common';
import { HttpAdapterHost } from '@nestjs/core';
import { Test } from '@nestjs/testing';
import { TypeOrmModule } from '@nestjs/typeorm';
import type { AddressInfo } from 'node:net';
import { LockedErrorFilter, LockMgrModule, LockService, WithLock } from '../lib';
import { LockMgrTestingModule } from '../lib/testing';
import { dropLockTable, lockTestingModule } from './support/lock-app';
import { describeOnDatabase, testDatabase, uniqueName } from './support/test-databases';

/** A user's routes: one takes its lock by hand in the handler, one with @WithLock. */
@Controller('payments')
class PaymentsController {
  constructor(private readonly locks: LockService) {}

  @Post(':id/refund')
  async refund(@Param('id') id: string) {
    const lock = await this.locks.getLock(`payment:${id}`, { expires: 30 });
    await this.locks.unlock(lock);
    return { id, refunded: true };
  }

  @Post(':id/capture')
  @WithLock((id: string) => `payment:${id}`)
  capture(@Param('id') id: string) {
    return { id, captured: true };
  }
}

async function listening(app: INestApplication): Promise<string> {
  await app.listen(0, '127.0.0.1');
  return `http://127.0.0.1:${(app.getHttpServer().address() as AddressInfo).port}`;
}

async function post(url: string): Promise<{ status: number; retryAfter: string | null; body: unknown }> {
  const response = await fetch(url, { method: 'POST' });
  return { status: response.status, retryAfter: response.headers.get('retry-after'), body: await response.json() };
}

const locked = {
  statusCode: 423,
  error: 'Locked',
  message: 'Lock "payment:1" is held elsewhere; try again later.',
  lock: 'payment:1',
};

describeOnDatabase(testDatabase('postgres'), 'LockedErrorFilter', (database) => {
  const isolation = uniqueName('locked_filter');
  const apps: INestApplication[] = [];

  /** An app with the lock module as `lockModule` configures it, the filter registered by the module or not. */
  async function start(lockModule: 'forRoot' | 'forRootAsync without the filter', ownFilter = false) {
    const builder =
      lockModule === 'forRoot'
        ? lockTestingModule(database, isolation, {}, { controllers: [PaymentsController] })
        : Test.createTestingModule({
            imports: [
              TypeOrmModule.forRoot(database.dataSourceOptions(isolation)),
              LockMgrModule.forRootAsync({ useFactory: async () => ({ tableName: isolation, cleanupInterval: 0, lockedErrorFilter: false }) }),
            ],
            controllers: [PaymentsController],
          });
    const app = (await builder.compile()).createNestApplication({ logger: false });
    if (ownFilter) app.useGlobalFilters(new LockedErrorFilter(app.get(HttpAdapterHost)));
    apps.push(app);
    return { url: await listening(app), locks: app.get(LockService) };
  }

  afterAll(async () => {
    for (const app of apps) await app.close();
    await dropLockTable(database, isolation);
  });

  it('answers 423 with Retry-After by the database clock, from getLock in a handler and from @WithLock', async () => {
    const { url, locks } = await start('forRoot');
    const held = await locks.getLock('payment:1', { expires: 30 });
    try {
      for (const route of ['refund', 'capture']) {
        const refused = await post(`${url}/payments/1/${route}`);
        expect(refused).toEqual({ status: 423, retryAfter: expect.stringMatching(/^(29|30)$/), body: locked });
      }
    } finally {
      await locks.unlock(held);
    }
    expect(await post(`${url}/payments/1/refund`)).toEqual({ status: 201, retryAfter: null, body: { id: '1', refunded: true } });
  });

  it('with lockedErrorFilter: false (forRootAsync), leaves LockedError to the app: Nest answers 500, @WithLock routes still 423', async () => {
    const { url, locks } = await start('forRootAsync without the filter');
    const held = await locks.getLock('payment:1', { expires: 30 });
    try {
      expect(await post(`${url}/payments/1/refund`)).toEqual({ status: 500, retryAfter: null, body: { statusCode: 500, message: 'Internal server error' } });
      expect(await post(`${url}/payments/1/capture`)).toEqual({ status: 423, retryAfter: null, body: locked });
    } finally {
      await locks.unlock(held);
    }
  });

  it('can be registered by the app itself', async () => {
    const { url, locks } = await start('forRootAsync without the filter', true);
    const held = await locks.getLock('payment:1', { expires: 30 });
    try {
      expect(await post(`${url}/payments/1/refund`)).toEqual({ status: 423, retryAfter: expect.stringMatching(/^(29|30)$/), body: locked });
    } finally {
      await locks.unlock(held);
    }
  });
});

describe('LockedErrorFilter of the testing module', () => {
  it('is registered unless lockedErrorFilter is false, as with LockMgrModule', async () => {
    const answers = [];
    for (const lockedErrorFilter of [true, false]) {
      const moduleRef = await Test.createTestingModule({
        imports: [LockMgrTestingModule.forRoot({ lockedErrorFilter })],
        controllers: [PaymentsController],
      }).compile();
      const app = moduleRef.createNestApplication({ logger: false });
      try {
        const url = await listening(app);
        await app.get(LockService).getLock('payment:1', { expires: 30 });
        answers.push(await post(`${url}/payments/1/refund`));
      } finally {
        await app.close();
      }
    }
    expect(answers.map(({ status, retryAfter }) => ({ status, retryAfter }))).toEqual([
      { status: 423, retryAfter: '30' },
      { status: 500, retryAfter: null },
    ]);
  });

  it('refuses a lockedErrorFilter that is not a boolean, naming the option', () => {
    expect(() => LockMgrTestingModule.forRoot({ lockedErrorFilter: 'no' as unknown as boolean })).toThrow(/lockedErrorFilter/);
  });
});
