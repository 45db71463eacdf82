import { Controller, Get, INestApplication, Injectable, MessageEvent, Param, Post, Sse } from '@nestjs/common';
import { FastifyAdapter } from '@nestjs/platform-fastify';
import { Test } from '@nestjs/testing';
import type { AddressInfo } from 'node:net';
import { interval, lastValueFrom, map, Observable, Subject, take } from 'rxjs';
import { LockContext, LockService, WithLock } from '../lib';
import { LockMgrTestingModule, ManualLockClock } from '../lib/testing';
import { until } from './support/lock-app';

/** A user's service that takes a lock by hand, django-lockmgr style, and lets the LockedError escape. */
@Injectable()
class Exports {
  constructor(private readonly locks: LockService) {}

  async start(id: string): Promise<{ id: string }> {
    await this.locks.getLock(`export:${id}`, { expires: 600 });
    return { id };
  }
}

/** A user's routes that return Observables: the lock must cover the stream, not only the call. */
@Controller('reports')
class ReportsController {
  /** Each report's data arrives when the test sends it. */
  readonly data = new Subject<string>();

  constructor(private readonly exports: Exports) {}

  @Get(':id')
  @WithLock((id: string) => `report:${id}`)
  build(@Param('id') id: string): Observable<{ id: string; data: string; lock: string }> {
    const lock = LockContext.current().name;
    return this.data.pipe(
      take(1),
      map((data) => ({ id, data, lock })),
    );
  }

  @Sse(':id/events')
  @WithLock((id: string) => `events:${id}`)
  async events(@Param('id') id: string): Promise<Observable<MessageEvent>> {
    // The subscription runs in the lock's context: so does the timer it starts.
    return interval(20).pipe(map((tick) => ({ data: { id, tick, lock: LockContext.current().name } })));
  }

  @Post('exports/:id')
  start(@Param('id') id: string) {
    return this.exports.start(id);
  }
}

type Platform = 'Express' | 'Fastify';

async function startApp(platform: Platform, clock: ManualLockClock): Promise<{ app: INestApplication; url: string; locks: LockService }> {
  const moduleRef = await Test.createTestingModule({
    imports: [LockMgrTestingModule.forRoot({ clock })],
    providers: [Exports],
    controllers: [ReportsController],
  }).compile();
  const app = platform === 'Express' ? moduleRef.createNestApplication({ logger: false }) : moduleRef.createNestApplication(new FastifyAdapter(), { logger: false });
  await app.listen(0, '127.0.0.1');
  const { port } = app.getHttpServer().address() as AddressInfo;
  return { app, url: `http://127.0.0.1:${port}`, locks: app.get(LockService) };
}

async function answer(response: Promise<Response>): Promise<{ status: number; retryAfter: string | null; body: unknown }> {
  const done = await response;
  return { status: done.status, retryAfter: done.headers.get('retry-after'), body: await done.json() };
}

const locked = (lock: string) => ({
  statusCode: 423,
  error: 'Locked',
  message: `Lock "${lock}" is held elsewhere; try again later.`,
  lock,
});

describe.each<Platform>(['Express', 'Fastify'])('locked HTTP handlers on %s, on the in-memory store', (platform) => {
  let clock: ManualLockClock;
  let test: Awaited<ReturnType<typeof startApp>>;
  let reports: ReportsController;

  beforeAll(async () => {
    clock = new ManualLockClock(new Date('2026-01-01T00:00:00Z'));
    test = await startApp(platform, clock);
    reports = test.app.get(ReportsController);
  });
  afterAll(() => test.app.close());

  it('holds the lock of a route that returns an Observable until it completes: one of two requests gets 200, the other 423', async () => {
    const first = answer(fetch(`${test.url}/reports/1`));
    await until(() => reports.data.observed);
    const second = await answer(fetch(`${test.url}/reports/1`));
    // The lock's lease is the module's defaultExpires, 600 s, and the clock stands still.
    expect(second).toEqual({ status: 423, retryAfter: '600', body: locked('report:1') });
    expect(await test.locks.isLocked('report:1')).toBe(true);

    reports.data.next('rows');
    expect(await first).toEqual({ status: 200, retryAfter: null, body: { id: '1', data: 'rows', lock: 'report:1' } });
    await until(async () => !(await test.locks.isLocked('report:1')));
  });

  it('releases the lock of an Observable route when the client goes away before it ends', async () => {
    const client = new AbortController();
    const request = fetch(`${test.url}/reports/2`, { signal: client.signal });
    await until(() => reports.data.observed);
    expect(await test.locks.isLocked('report:2')).toBe(true);
    client.abort();
    await expect(request).rejects.toThrow();
    await until(async () => !(await test.locks.isLocked('report:2')));
    expect(reports.data.observed).toBe(false);
  });

  it('holds the lock of a server-sent event stream while a client reads it, and releases it when the client leaves', async () => {
    const client = new AbortController();
    try {
      const stream = await fetch(`${test.url}/reports/3/events`, { signal: client.signal });
      expect(stream.status).toBe(200);
      const reader = stream.body!.getReader();
      let received = '';
      while (!received.includes('"tick":0')) received += new TextDecoder().decode((await reader.read()).value);
      expect(received).toContain('"tick":0,"lock":"events:3"');

      const second = await answer(fetch(`${test.url}/reports/3/events`));
      expect(second).toEqual({ status: 423, retryAfter: '600', body: locked('events:3') });
    } finally {
      client.abort();
    }
    await until(async () => !(await test.locks.isLocked('events:3')));
  });

  it('answers 423 with Retry-After when getLock in a service finds the lock held, without the holder host name', async () => {
    const held = await test.locks.getLock('export:9', { expires: 90, lockedBy: 'host-b' });
    clock.advance(30.5);
    const refused = await answer(fetch(`${test.url}/reports/exports/9`, { method: 'POST' }));
    expect(refused).toEqual({ status: 423, retryAfter: '60', body: locked('export:9') });
    expect(JSON.stringify(refused.body)).not.toContain('host-b');

    await test.locks.unlock(held);
    expect(await answer(fetch(`${test.url}/reports/exports/9`, { method: 'POST' }))).toMatchObject({ status: 201, body: { id: '9' } });
  });

  it('has no Retry-After when the holder never lets go by itself', async () => {
    await test.locks.getLock('export:10', { expires: 0 });
    expect(await answer(fetch(`${test.url}/reports/exports/10`, { method: 'POST' }))).toEqual({
      status: 423,
      retryAfter: null,
      body: locked('export:10'),
    });
  });
});

describe('an Observable of a @WithLock method called by the app itself', () => {
  let app: Awaited<ReturnType<typeof startApp>>;
  beforeAll(async () => (app = await startApp('Express', new ManualLockClock())));
  afterAll(() => app.app.close());

  it('keeps the lock through its subscription, errors or not, and refuses a second subscription', async () => {
    const reports = app.app.get(ReportsController);
    const built = await reports.build('4');
    const result = lastValueFrom(built);
    expect(await app.locks.isLocked('report:4')).toBe(true);
    reports.data.error(new Error('source failed'));
    await expect(result).rejects.toThrow('source failed');
    await until(async () => !(await app.locks.isLocked('report:4')));
    await expect(lastValueFrom(built)).rejects.toThrow('subscribe to it once');
  });

  it('lets the lock go when nobody subscribes to it', async () => {
    await app.app.get(ReportsController).build('5');
    await until(async () => !(await app.locks.isLocked('report:5')));
  });
});

describe.each<Platform>(['Express', 'Fastify'])('shutting down an app on %s while a locked stream is open', (platform) => {
  it('ends the stream, releases its lock and closes, however long the client would have read', async () => {
    const { app, url, locks } = await startApp(platform, new ManualLockClock());
    const client = new AbortController();
    try {
      const stream = await fetch(`${url}/reports/9/events`, { signal: client.signal });
      const reader = stream.body!.getReader();
      let received = '';
      while (!received.includes('"tick":0')) received += new TextDecoder().decode((await reader.read()).value);
      expect(await locks.isLocked('events:9')).toBe(true);

      const startedAt = performance.now();
      await app.close();
      expect(performance.now() - startedAt).toBeLessThan(5000);
      // The server ended the response: the client reads to its end instead of waiting for ever.
      for (let chunk = await reader.read(); !chunk.done; chunk = await reader.read());
    } finally {
      client.abort();
    }
  });
});
