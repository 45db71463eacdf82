import { Test } from '@nestjs/testing';
import Database from 'better-sqlite3';
import { DataSource } from 'typeorm';
import { createLockTableMigration, LockMgrModule } from '../lib';
import { installEarlierDrawFunction } from './support/earlier-version';
import { createLockApp, dropLockTable, LockApp, sleep, until, useLockApp } from './support/lock-app';
import { RecordingLogger } from './support/recording-logger';
import {
  describeEachDatabase,
  describeOnDatabase,
  MYSQL_URL,
  POSTGRES_URL,
  sqliteFile,
  TestDatabase,
  testDatabase,
  uniqueName,
} from './support/test-databases';

/** How long an app may take to start on a complete table while the table is in use (generous: the machine is shared). */
const START_BOUND_MS = 4_000;

/**
 * Starts an app, and gives it `START_BOUND_MS` to be ready. Undefined if it was not: the start goes on,
 * and `settle` closes it (or swallows its failure) once whatever held it up has let go.
 */
async function startWithinBound(database: TestDatabase, isolation: string) {
  const start = createLockApp(database, isolation);
  start.catch(() => undefined);
  const app = await Promise.race([start, sleep(START_BOUND_MS).then(() => undefined)]);
  const settle = async () => {
    if (!app) await start.then((late) => late.close()).catch(() => undefined);
  };
  return { app, settle };
}

/** Another connection in a transaction on the lock table, holding what any DDL on it would have to wait for. */
async function holdTableInUse(database: TestDatabase, isolation: string): Promise<() => Promise<void>> {
  if (database.kind === 'sqlite') {
    const connection = new Database(sqliteFile(isolation));
    connection.exec('BEGIN IMMEDIATE');
    return async () => {
      connection.exec('ROLLBACK');
      connection.close();
    };
  }
  const dataSource = await new DataSource(database.dataSourceOptions(isolation)).initialize();
  const runner = dataSource.createQueryRunner();
  await runner.startTransaction();
  // An uncommitted insert, as a Django service's get_lock makes (with the columns Django knows): it holds
  // what any DDL on the table waits for (PostgreSQL: ROW EXCLUSIVE, which ACCESS EXCLUSIVE conflicts with;
  // MariaDB: metadata locks on the table and its sequence, until the transaction ends).
  const now = database.kind === 'postgres' ? 'clock_timestamp()' : 'UTC_TIMESTAMP(6)';
  await runner.query(
    `INSERT INTO ${dataSource.driver.escape(isolation)} (name, locked_until, created_at, updated_at) VALUES ('in-transaction', NULL, ${now}, ${now})`,
  );
  return async () => {
    await runner.rollbackTransaction();
    await runner.release();
    await dataSource.destroy();
  };
}

describeEachDatabase('Starting on a complete lock table', (database) => {
  const isolation = uniqueName('startup_busy');
  let first: LockApp;

  useLockApp(database, isolation, (started) => (first = started));

  it('takes no lock on it: an app starts while another transaction uses the table, and works', async () => {
    const held = await first.locks.getLock('held-before', { expires: 60 });
    const releaseTable = await holdTableInUse(database, isolation);
    let started: Awaited<ReturnType<typeof startWithinBound>> | undefined;
    try {
      started = await startWithinBound(database, isolation);
      expect(started.app).toBeDefined();
      // SQLite lets one writer at a time into the file: there the app's lock operations wait for the
      // transaction holding it, so they are tried after it ends.
      if (database.kind !== 'sqlite') {
        const lock = await started.app!.locks.getLock('taken-while-in-use', { expires: 60 });
        expect(lock.fencingToken).toBeGreaterThan(held.fencingToken);
        expect(await started.app!.locks.unlock(lock)).toBe(true);
      }
    } finally {
      await releaseTable();
      await started?.settle();
    }
    const app = started.app!;
    try {
      await expect(app.locks.getLock('held-before')).rejects.toMatchObject({ lockName: 'held-before' });
      expect((await app.locks.getLock('after', { expires: 60 })).fencingToken).toBeGreaterThan(held.fencingToken);
    } finally {
      await app.close();
    }
  });
});

/** A role or user that may only read and write the lock table and its queue (and, with `drawsTokens`, draw tokens); created and dropped by the test. */
interface LeastPrivilegeAccount {
  database: TestDatabase;
  drop(): Promise<void>;
}

async function leastPrivilegeAccount(database: TestDatabase, isolation: string, admin: DataSource, drawsTokens: boolean): Promise<LeastPrivilegeAccount> {
  const account = uniqueName('lockapp');
  const url = new URL(database.kind === 'postgres' ? POSTGRES_URL : MYSQL_URL);
  url.username = account;
  url.password = '';
  if (database.kind === 'postgres') {
    await admin.query(`CREATE ROLE "${account}" LOGIN`);
    await admin.query(`REVOKE CREATE ON SCHEMA public FROM "${account}"`);
    await admin.query(`GRANT SELECT, INSERT, UPDATE, DELETE ON "${isolation}", "${isolation}_queue" TO "${account}"`);
    if (drawsTokens) await admin.query(`GRANT USAGE ON SEQUENCE "${isolation}_fencing_token_seq" TO "${account}"`);
  } else {
    await admin.query(`CREATE USER '${account}'@'127.0.0.1'`);
    await admin.query(`GRANT SELECT, INSERT, UPDATE, DELETE ON \`${isolation}\` TO '${account}'@'127.0.0.1'`);
    if (drawsTokens) await admin.query(`GRANT SELECT, INSERT ON \`${isolation}_fencing_token_seq\` TO '${account}'@'127.0.0.1'`);
  }
  return {
    database: { ...database, dataSourceOptions: () => ({ ...database.dataSourceOptions(isolation), url: url.href }) } as TestDatabase,
    drop: async () => {
      if (database.kind === 'postgres') {
        await admin.query(`DROP OWNED BY "${account}"`);
        await admin.query(`DROP ROLE "${account}"`);
      } else {
        await admin.query(`DROP USER '${account}'@'127.0.0.1'`);
      }
    },
  };
}

/** Starts an app on `database`, and resolves it with the warnings the module logged as it started. */
async function startLogging(database: TestDatabase, isolation: string): Promise<{ app: LockApp; warnings: string[] }> {
  const logger = new RecordingLogger();
  const app = await createLockApp(database, isolation, {}, logger);
  return { app, warnings: logger.lines('warn', 'LockMgrModule') };
}

for (const kind of ['postgres', 'mysql'] as const) {
  describeOnDatabase(testDatabase(kind), 'An app whose account may only read and write the lock table', (database) => {
    const isolation = uniqueName('least_privilege');
    let admin: DataSource;
    let account: LeastPrivilegeAccount;
    let tableOnlyAccount: LeastPrivilegeAccount;

    beforeAll(async () => {
      // The table made by the migration, as an app that manages its schema runs it with a privileged account.
      admin = await new DataSource({
        ...database.dataSourceOptions(isolation),
        migrations: [createLockTableMigration({ tableName: isolation })],
        migrationsTableName: `${isolation}_migrations`,
      }).initialize();
      await admin.runMigrations();
      account = await leastPrivilegeAccount(database, isolation, admin, true);
      tableOnlyAccount = await leastPrivilegeAccount(database, isolation, admin, false);
    });
    afterAll(async () => {
      await account?.drop();
      await tableOnlyAccount?.drop();
      await admin?.query(`DROP TABLE IF EXISTS ${admin.driver.escape(`${isolation}_migrations`)}`);
      await admin?.destroy();
      await dropLockTable(database, isolation);
    });

    it('starts with the default options (ensureTable on) and takes and releases locks', async () => {
      const { app, warnings } = await startLogging(account.database, isolation);
      try {
        expect(warnings).toEqual([]);
        const lock = await app.locks.getLock('least-privilege', { expires: 60 });
        expect(lock.fencingToken).toBeGreaterThan(0);
        expect(await app.locks.tryLock('least-privilege')).toBeNull();
        expect(await app.locks.unlock(lock)).toBe(true);
        expect((await app.locks.getLock('least-privilege', { expires: 60 })).fencingToken).toBeGreaterThan(lock.fencingToken);
        expect(await app.locks.cleanLocks()).toBe(0);
      } finally {
        await app.close();
      }
    });

    it('is refused at start-up, with the grant it lacks, when it may not draw fencing tokens', async () => {
      // PostgreSQL names the schema the table was found in: here, the one the search path finds.
      const [table, sequence] =
        kind === 'postgres' ? [`"public"."${isolation}"`, `"public"."${isolation}_fencing_token_seq"`] : [`"${isolation}"`, `\`${isolation}_fencing_token_seq\``];
      const grant = kind === 'postgres' ? 'grant it USAGE on the sequence' : 'grant it SELECT, INSERT on the sequence';
      // A data source of the test's own, closed by the test: a module that fails to start closes only its own connections.
      const dataSource = await new DataSource(tableOnlyAccount.database.dataSourceOptions(isolation)).initialize();
      try {
        for (const ensureTable of [true, false]) {
          const start = Test.createTestingModule({
            imports: [LockMgrModule.forRoot({ dataSource, tableName: isolation, ensureTable, cleanupInterval: 0 })],
          }).compile();
          const error = await start.then((moduleRef) => moduleRef.close(), (failure: Error) => failure);
          expect(error).toBeInstanceOf(Error);
          expect((error as Error).message).toContain(`The lock table ${table} draws its fencing tokens from the sequence ${sequence}`);
          expect((error as Error).message).toContain(grant);
        }
      } finally {
        await dataSource.destroy();
      }
    });

    if (kind === 'postgres') {
      it('starts on a table of an earlier version, lacking the trigger it may not add, and says so', async () => {
        await admin.query(`DROP TRIGGER "${isolation}_draw_fencing_token" ON "${isolation}"`);
        const { app, warnings } = await startLogging(account.database, isolation);
        try {
          const lock = await app.locks.getLock('upgraded', { expires: 60 });
          expect(await app.locks.unlock(lock)).toBe(true);
        } finally {
          await app.close();
        }
        expect(warnings).toContainEqual(expect.stringMatching(/lacks the trigger .* start once with the table's owner, or run the lock table migration/));
      });

      it('starts on a table whose trigger draws tokens as an earlier version did, which it may not replace, and says so', async () => {
        const runner = admin.createQueryRunner();
        try {
          await new (createLockTableMigration({ tableName: isolation }))().up(runner);
        } finally {
          await runner.release();
        }
        await installEarlierDrawFunction(admin, isolation, 5000);
        const { app, warnings } = await startLogging(account.database, isolation);
        try {
          const lock = await app.locks.getLock('upgraded', { expires: 60 });
          expect(lock.fencingToken).toBeGreaterThan(5000);
          expect(await app.locks.unlock(lock)).toBe(true);
        } finally {
          await app.close();
        }
        expect(warnings).toContainEqual(
          expect.stringMatching(/has a trigger of an earlier version, .* start once with the table's owner, or run the lock table migration/),
        );
      });
      return;
    }

    it('starts on a table of an earlier version, lacking the clean-up’s index it may not add, says so, and still cleans up', async () => {
      await admin.query(`DROP INDEX \`${isolation}_locked_until\` ON \`${isolation}\``);
      const { app, warnings } = await startLogging(account.database, isolation);
      try {
        await app.locks.getLock('expiring', { expires: 0.1 });
        const live = await app.locks.getLock('live', { expires: 60 });
        await until(async () => !(await app.locks.isLocked('expiring')));
        expect(await app.locks.cleanLocks()).toBe(1);
        expect(await app.locks.isLocked('live')).toBe(true);
        expect(await app.locks.unlock(live)).toBe(true);
      } finally {
        await app.close();
      }
      expect(warnings).toContainEqual(expect.stringMatching(/has no index on locked_until, and this account may not create it: the clean-up .* reads the whole table/));
      expect(await hasCleanupIndex(admin, isolation)).toBe(false);
    });

    it('adds the clean-up’s index at start-up once the account may create indexes, needing no other privilege', async () => {
      const { username } = new URL((account.database.dataSourceOptions(isolation) as { url: string }).url);
      await admin.query(`GRANT INDEX ON \`${isolation}\` TO '${username}'@'127.0.0.1'`);
      await (await createLockApp(account.database, isolation)).close();
      expect(await hasCleanupIndex(admin, isolation)).toBe(true);
    });

    describe('on a table of an earlier version, whose owner default is UUID()', () => {
      const ownerOfRowWithoutOne = async (name: string) => {
        await admin.query(`INSERT INTO \`${isolation}\` (name, created_at, updated_at) VALUES (?, UTC_TIMESTAMP(6), UTC_TIMESTAMP(6))`, [name]);
        const [{ owner }] = await admin.query(`SELECT owner FROM \`${isolation}\` WHERE name = ?`, [name]);
        return owner as string;
      };

      beforeAll(() => admin.query(`ALTER TABLE \`${isolation}\` ALTER COLUMN owner SET DEFAULT (UUID())`));

      it('starts, keeping the default it may not change, and says how to change it', async () => {
        const { app, warnings } = await startLogging(account.database, isolation);
        try {
          const lock = await app.locks.getLock('upgraded', { expires: 60 });
          expect(await app.locks.unlock(lock)).toBe(true);
        } finally {
          await app.close();
        }
        expect(warnings).toEqual([
          expect.stringContaining(
            `The owner column of the lock table "${isolation}" still has the default of earlier versions, UUID(): the rows a Django service inserts get version-1 UUIDs`,
          ),
        ]);
        expect(warnings[0]).toContain(`run: ALTER TABLE \`${isolation}\` ALTER COLUMN owner SET DEFAULT (LOWER(HEX(RANDOM_BYTES(16))))`);
        expect(await ownerOfRowWithoutOne('before-upgrade')).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-1[0-9a-f]{3}-/);
      });

      it('gets random owner tokens for rows inserted without one, once an account that may alter the table starts', async () => {
        const { app, warnings } = await startLogging(database, isolation);
        await app.close();
        expect(warnings).toEqual([]);
        const owners = [await ownerOfRowWithoutOne('after-upgrade-1'), await ownerOfRowWithoutOne('after-upgrade-2')];
        for (const owner of owners) expect(owner).toMatch(/^[0-9a-f]{32}$/);
        expect(owners[0]).not.toBe(owners[1]);
        const again = await startLogging(account.database, isolation);
        await again.app.close();
        expect(again.warnings).toEqual([]);
      });
    });

  });
}

/** Whether the MariaDB lock table has the index the clean-up finds expired rows by. */
async function hasCleanupIndex(dataSource: DataSource, table: string): Promise<boolean> {
  const indexes = await dataSource.query(
    `SELECT INDEX_NAME FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ? AND COLUMN_NAME = 'locked_until'`,
    [table],
  );
  return indexes.length > 0;
}

describeOnDatabase(testDatabase('mysql'), 'The clean-up’s index on locked_until', (database) => {
  const isolation = uniqueName('cleanup_index');
  let admin: DataSource;

  beforeAll(async () => (admin = await new DataSource(database.dataSourceOptions(isolation)).initialize()));
  afterAll(async () => {
    await admin?.destroy();
    await dropLockTable(database, isolation);
  });

  const dropIndex = () => admin.query(`DROP INDEX \`${isolation}_locked_until\` ON \`${isolation}\``);

  it('is created with the table, and added at start-up to a table of an earlier version that lacks it', async () => {
    await (await createLockApp(database, isolation)).close();
    expect(await hasCleanupIndex(admin, isolation)).toBe(true);
    await dropIndex();
    const app = await createLockApp(database, isolation);
    try {
      expect(await hasCleanupIndex(admin, isolation)).toBe(true);
      await app.locks.unlock(await app.locks.getLock('after-upgrade'));
    } finally {
      await app.close();
    }
  });

  it('is added by the migration, run again under a new timestamp, to a table of an earlier version', async () => {
    await dropIndex();
    const migrationsTableName = `${isolation}_migrations`;
    const migrated = new DataSource({
      ...database.dataSourceOptions(isolation),
      migrations: [createLockTableMigration({ tableName: isolation, timestamp: 1767225600000 })],
      migrationsTableName,
    });
    await migrated.initialize();
    try {
      await migrated.runMigrations();
      expect(await hasCleanupIndex(admin, isolation)).toBe(true);
    } finally {
      await migrated.query(`DROP TABLE IF EXISTS \`${migrationsTableName}\``);
      await migrated.destroy();
    }
  });
});

describeOnDatabase(testDatabase('mysql'), 'Instances starting together on a missing table', (database) => {
  const isolation = uniqueName('startup_wait');

  afterAll(() => dropLockTable(database, isolation));

  it('wait for the instance creating it for longer than the operation timeout', async () => {
    // Another instance holds the start-up lock for 2 s, as if it were creating the table.
    const other = await new DataSource(database.dataSourceOptions(isolation)).initialize();
    const runner = other.createQueryRunner();
    await runner.connect();
    try {
      await runner.query('SELECT GET_LOCK(?, 10)', [`lockmgr:${isolation}`]);
      setTimeout(() => void runner.query('DO RELEASE_LOCK(?)', [`lockmgr:${isolation}`]).catch(() => undefined), 2000);
      const app = await createLockApp(database, isolation, { operationTimeout: 1 });
      try {
        expect(await app.locks.tryLock('created')).not.toBeNull();
      } finally {
        await app.close();
      }
    } finally {
      await runner.release();
      await other.destroy();
    }
  });
});

describeEachDatabase('A lock table dropped by hand', (database) => {
  const isolation = uniqueName('dropped');

  afterAll(() => dropLockTable(database, isolation));

  it('is made again at start-up, with fencing tokens that go on from the last one', async () => {
    const first = await createLockApp(database, isolation);
    const before = (await first.locks.getLock('job', { expires: 60 })).fencingToken;
    await first.dataSource.query(`DROP TABLE ${first.dataSource.driver.escape(isolation)}`);
    await first.close();
    const second = await createLockApp(database, isolation);
    try {
      expect((await second.locks.getLock('job', { expires: 60 })).fencingToken).toBeGreaterThan(before);
    } finally {
      await second.close();
    }
  });
});
