import { INestApplication } from '@nestjs/common';
import { TerminusModule } from '@nestjs/terminus';
import type { AddressInfo } from 'node:net';
import { DataSource } from 'typeorm';
import { createLockTableMigration, LockMgrHealthIndicator, LockMgrModuleOptions } from '../lib';
import { HealthController } from '../sample/health.controller';
import { dropLockTable, lockTestingModule, sleep } from './support/lock-app';
import { RecordingLogger } from './support/recording-logger';
import { PROXIED_SERVERS, proxyServer, TcpProxy } from './support/tcp-proxy';
import { describeEachDatabase, describeOnDatabase, MYSQL_URL, POSTGRES_URL, removeSqliteFile, TestDatabase, testDatabase, uniqueName } from './support/test-databases';
import { runWithoutPackages } from './support/without-packages';
import type { WithoutPackagesReport } from './workers/without-packages-worker';

interface HealthApp {
  app: INestApplication;
  url: string;
  indicator: LockMgrHealthIndicator;
  dataSource: DataSource;
  logger: RecordingLogger;
}

/** An app with the sample's health route. */
async function startHealthApp(database: TestDatabase, isolation: string, options: LockMgrModuleOptions = {}): Promise<HealthApp> {
  const moduleRef = await lockTestingModule(database, isolation, options, {
    imports: [TerminusModule.forRoot({ logger: false })],
    controllers: [HealthController],
  }).compile();
  const logger = new RecordingLogger();
  const app = moduleRef.createNestApplication({ logger });
  await app.listen(0, '127.0.0.1');
  const { port } = app.getHttpServer().address() as AddressInfo;
  return { app, url: `http://127.0.0.1:${port}/health`, indicator: app.get(LockMgrHealthIndicator), dataSource: app.get(DataSource), logger };
}

/** What the indicator logged of its failed checks. */
function loggedFailures(test: HealthApp): string[] {
  return test.logger.lines('error', 'LockMgrHealthIndicator');
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

  it('is down with a generic reason when the lock table is gone, GET /health answers 503, and the log says why', async () => {
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
      const down = { status: 'down', message: 'database error' };
      expect(await other.indicator.isHealthy()).toEqual({ lockmgr: down });
      expect(await getHealth(other.url)).toEqual({
        status: 503,
        body: { status: 'error', info: {}, error: { locks: down }, details: { locks: down } },
      });
      expect(loggedFailures(other)).toEqual([
        `Health check "lockmgr" is down: Could not read the lock table "${gone}": ${missing}`,
        `Health check "locks" is down: Could not read the lock table "${gone}": ${missing}`,
      ]);
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
    expect(down).toEqual({ lockmgr: { status: 'down', message: 'database unreachable' } });
    expect(loggedFailures(test).at(-1)).toMatch(new RegExp(`^Health check "lockmgr" is down: Could not read the lock table "${isolation}": .+`));
    const answer = await getHealth(test.url);
    expect(answer).toMatchObject({ status: 503, body: { status: 'error', error: { locks: { status: 'down', message: 'database unreachable' } } } });
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
    expect(result).toEqual({ lockmgr: { status: 'down', message: 'timed out' } });
    expect(loggedFailures(test).at(-1)).toMatch(/^Health check "lockmgr" is down: Could not read the lock table ".+": .*time ?out/i);
    expect(seconds).toBeLessThan(OPERATION_TIMEOUT + 1);
    proxy.up();
    // The connection that timed out is dropped; the next check uses a fresh one.
    await sleep(50);
    expect(await test.indicator.isHealthy()).toEqual({ lockmgr: { status: 'up' } });
  });

  it('names neither host nor port when the server refuses connections; the log has the driver’s message with both', async () => {
    expect(await test.indicator.isHealthy()).toEqual({ lockmgr: { status: 'up' } });
    const { port } = proxy;
    // Nothing listens on the port any more: connecting is refused, as by a server that is gone.
    await proxy.close();
    await sleep(50);
    const result = await test.indicator.isHealthy();
    expect(result).toEqual({ lockmgr: { status: 'down', message: 'database unreachable' } });
    expect(loggedFailures(test).at(-1)).toContain(`ECONNREFUSED 127.0.0.1:${port}`);
    const answer = await getHealth(test.url);
    expect(answer.status).toBe(503);
    expect(JSON.stringify(answer.body)).not.toMatch(new RegExp(`127\\.0\\.0\\.1|${port}|ECONNREFUSED`));
  });
});

/**
 * A database user of the test's own, which the app connects as and which then loses its right to log
 * in: the driver's message names the user (and, on MariaDB, the host it came from).
 */
interface OwnUser {
  name: string;
  /** The database as the user reaches it. */
  database: TestDatabase;
  /** Stops the user from logging in, and ends its sessions: the app's next connection is refused. */
  shutOut(): Promise<void>;
  drop(): Promise<void>;
}

async function createOwnUser(database: TestDatabase, isolation: string, admin: DataSource): Promise<OwnUser> {
  const name = `${isolation}_user`;
  const url = new URL(database.kind === 'postgres' ? POSTGRES_URL : MYSQL_URL);
  url.username = name;
  const reached: TestDatabase = { ...database, dataSourceOptions: () => ({ ...database.dataSourceOptions(isolation), url: url.toString() }) };
  if (database.kind === 'postgres') {
    await admin.query(`CREATE ROLE "${name}" LOGIN`);
    await admin.query(`GRANT SELECT, INSERT, UPDATE, DELETE ON "${isolation}", "${isolation}_queue" TO "${name}"`);
    await admin.query(`GRANT USAGE ON SEQUENCE "${isolation}_fencing_token_seq" TO "${name}"`);
    return {
      name,
      database: reached,
      shutOut: async () => {
        await admin.query(`ALTER ROLE "${name}" NOLOGIN`);
        await admin.query('SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = $1', [name]);
      },
      drop: async () => {
        await admin.query(`DROP OWNED BY "${name}"`);
        await admin.query(`DROP ROLE "${name}"`);
      },
    };
  }
  await admin.query(`CREATE USER '${name}'@'%'`);
  await admin.query(`GRANT SELECT, INSERT, UPDATE, DELETE ON \`${admin.driver.database}\`.* TO '${name}'@'%'`);
  return {
    name,
    database: reached,
    shutOut: async () => {
      await admin.query(`DROP USER '${name}'@'%'`);
      const sessions: { id: number }[] = await admin.query('SELECT id FROM information_schema.processlist WHERE user = ?', [name]);
      for (const { id } of sessions) await admin.query(`KILL CONNECTION ${Number(id)}`);
    },
    drop: () => admin.query(`DROP USER IF EXISTS '${name}'@'%'`),
  };
}

for (const server of PROXIED_SERVERS) describeOnDatabase(server.database, 'LockMgrHealthIndicator when the database refuses its user', (database) => {
  const isolation = uniqueName('health_user');
  let admin: DataSource;
  let user: OwnUser;
  let test: HealthApp;

  beforeAll(async () => {
    admin = await new DataSource(database.dataSourceOptions(isolation)).initialize();
    const queryRunner = admin.createQueryRunner();
    await new (createLockTableMigration({ tableName: isolation }))().up(queryRunner);
    await queryRunner.release();
    user = await createOwnUser(database, isolation, admin);
    test = await startHealthApp(user.database, isolation, { ensureTable: false });
  });
  afterAll(async () => {
    await test?.app.close();
    await user?.drop();
    await admin?.destroy();
    await dropLockTable(database, isolation);
  });

  it('says "down" without the user’s name; the log names it', async () => {
    expect(await test.indicator.isHealthy()).toEqual({ lockmgr: { status: 'up' } });
    await user.shutOut();
    // The ended sessions leave the pool; the next check opens a connection, which the server refuses.
    await sleep(200);
    const result = await test.indicator.isHealthy();
    expect(result).toEqual({ lockmgr: { status: 'down', message: 'database error' } });
    const answer = await getHealth(test.url);
    expect(answer.status).toBe(503);
    expect(JSON.stringify([result, answer.body])).not.toContain(user.name);
    expect(loggedFailures(test).some((line) => line.includes(user.name))).toBe(true);
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
