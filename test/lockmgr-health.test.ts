import { INestApplication } from '@nestjs/common';
import { TerminusModule } from '@nestjs/terminus';
import type { AddressInfo } from 'node:net';
import { DataSource } from 'typeorm';
import { LockMgrHealthIndicator, LockMgrModuleOptions } from '../lib';
import { HealthController } from '../sample/health.controller';
import { dropLockTable, lockTestingModule, sleep } from './support/lock-app';
import { RecordingLogger } from './support/recording-logger';
import { PROXIED_SERVERS, proxyServer, TcpProxy } from './support/tcp-proxy';
import { describeEachDatabase, describeOnDatabase, removeSqliteFile, TestDatabase, testDatabase, uniqueName } from './support/test-databases';
import { runWithoutPackages } from './support/without-packages';
import type { WithoutPackagesReport } from './workers/without-packages-worker';

interface HealthApp {
  app: INestApplication;
  url: string;
  indicator: LockMgrHealthIndicator;
  dataSource: DataSource;
}

/** An app with the sample's health route. */
async function startHealthApp(database: TestDatabase, isolation: string, options: LockMgrModuleOptions = {}): Promise<HealthApp> {
  const moduleRef = await lockTestingModule(database, isolation, options, {
    imports: [TerminusModule.forRoot({ logger: false })],
    controllers: [HealthController],
  }).compile();
  const app = moduleRef.createNestApplication({ logger: new RecordingLogger() });
  await app.listen(0, '127.0.0.1');
  const { port } = app.getHttpServer().address() as AddressInfo;
  return { app, url: `http://127.0.0.1:${port}/health`, indicator: app.get(LockMgrHealthIndicator), dataSource: app.get(DataSource) };
}

async function getHealth(url: string): Promise<{ status: number; body: unknown }> {
  const response = await fetch(url);
  return { status: response.status, body: await response.json() };
}

describeEachDatabase('LockMgrHealthIndicator', (database) => {
  const isolation = uniqueName('health');
  let test: HealthApp;

  beforeAll(async () => {
    test = await startHealthApp(database, isolation);
  });
  afterAll(async () => {
    await test?.app.close();
    await dropLockTable(database, isolation);
  });

  it('is up when the lock table answers', async () => {
    expect(await test.indicator.isHealthy()).toEqual({ lockmgr: { status: 'up' } });
    expect(await test.indicator.isHealthy('locks')).toEqual({ locks: { status: 'up' } });
  });

  it('answers GET /health with 200 through terminus', async () => {
    expect(await getHealth(test.url)).toEqual({
      status: 200,
      body: { status: 'ok', info: { locks: { status: 'up' } }, error: {}, details: { locks: { status: 'up' } } },
    });
  });

  it('refuses a key that is not a non-empty string, before reading the table', async () => {
    await expect(test.indicator.isHealthy('')).rejects.toThrow(new RangeError('isHealthy key must not be empty.'));
    await expect(test.indicator.isHealthy(5 as never)).rejects.toThrow(new TypeError('isHealthy key must be a string, got number 5.'));
  });

  it('is down, saying why, when the lock table is gone, and GET /health answers 503', async () => {
    const gone = uniqueName('health_gone');
    const other = await startHealthApp(database, gone);
    try {
      // Dropped by hand: the table this app checks is one of its own.
      await other.dataSource.query(`DROP TABLE ${other.dataSource.driver.escape(gone)}`);
      const missing = {
        postgres: `relation "${gone}" does not exist`,
        mysql: `Table '${other.dataSource.driver.database}.${gone}' doesn't exist`,
        sqlite: `no such table: ${gone}`,
      }[database.kind];
      const message = `Could not read the lock table "${gone}": ${missing}`;
      expect(await other.indicator.isHealthy()).toEqual({ lockmgr: { status: 'down', message } });
      expect(await getHealth(other.url)).toEqual({
        status: 503,
        body: { status: 'error', info: {}, error: { locks: { status: 'down', message } }, details: { locks: { status: 'down', message } } },
      });
    } finally {
      await other.app.close();
      await dropLockTable(database, gone);
    }
  });
});

const OPERATION_TIMEOUT = 1;

for (const server of PROXIED_SERVERS) describeOnDatabase(server.database, 'LockMgrHealthIndicator when the database cannot be reached', (database) => {
  const isolation = uniqueName('health_outage');
  let proxy: TcpProxy;
  let test: HealthApp;

  beforeAll(async () => {
    const started = await proxyServer(server, isolation);
    proxy = started.proxy;
    test = await startHealthApp(started.throughProxy, isolation, { operationTimeout: OPERATION_TIMEOUT });
  });
  afterEach(() => proxy.up());
  afterAll(async () => {
    proxy?.up();
    await test?.app.close();
    await proxy?.close();
    await dropLockTable(database, isolation);
  });

  it('is down while the server is down, and up again once it is back', async () => {
    expect(await test.indicator.isHealthy()).toEqual({ lockmgr: { status: 'up' } });
    proxy.down();
    const down = await test.indicator.isHealthy();
    expect(down).toEqual({ lockmgr: { status: 'down', message: expect.stringMatching(new RegExp(`^Could not read the lock table "${isolation}": .+`)) } });
    const answer = await getHealth(test.url);
    expect(answer).toMatchObject({ status: 503, body: { status: 'error', error: { locks: { status: 'down' } } } });
    proxy.up();
    expect(await test.indicator.isHealthy()).toEqual({ lockmgr: { status: 'up' } });
    expect(await getHealth(test.url)).toMatchObject({ status: 200, body: { status: 'ok' } });
  });

  it('is down within the operation timeout when the network stops answering, rather than hang', async () => {
    expect(await test.indicator.isHealthy()).toEqual({ lockmgr: { status: 'up' } });
    proxy.partition();
    const started = performance.now();
    const result = await test.indicator.isHealthy();
    const seconds = (performance.now() - started) / 1000;
    expect(result).toEqual({ lockmgr: { status: 'down', message: expect.stringMatching(/^Could not read the lock table ".+": .*timeout/i) } });
    expect(seconds).toBeLessThan(OPERATION_TIMEOUT + 1);
    proxy.up();
    // The connection that timed out is dropped; the next check uses a fresh one.
    await sleep(50);
    expect(await test.indicator.isHealthy()).toEqual({ lockmgr: { status: 'up' } });
  });
});

describe('An app without TerminusModule', () => {
  const isolation = uniqueName('health_no_module');
  afterAll(() => removeSqliteFile(isolation));

  it('starts, and a health check says to import TerminusModule', async () => {
    const moduleRef = await lockTestingModule(testDatabase('sqlite'), isolation).compile();
    await moduleRef.init();
    try {
      await expect(moduleRef.get(LockMgrHealthIndicator).isHealthy()).rejects.toThrow(
        'LockMgrHealthIndicator needs TerminusModule from @nestjs/terminus: import it in the app.',
      );
    } finally {
      await moduleRef.close();
    }
  });
});

describe('An app without @nestjs/terminus installed', () => {
  const isolation = uniqueName('health_none');
  afterAll(() => removeSqliteFile(isolation));

  it('imports nestjs-lockmgr, starts and takes locks; only a health check asks for terminus', async () => {
    expect(await runWithoutPackages(['@nestjs/terminus'], isolation)).toEqual<WithoutPackagesReport>({
      packages: { '@nestjs/terminus': { resolvable: false, loaded: false } },
      fencingToken: expect.any(Number),
      withLock: 'ran',
      healthCheck: 'LockMgrHealthIndicator needs @nestjs/terminus: install it with "npm install @nestjs/terminus".',
    });
  });
});
