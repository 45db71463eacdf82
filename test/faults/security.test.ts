import Database from 'better-sqlite3';
import { Connection } from 'mysql2';
import { randomBytes } from 'node:crypto';
import { Client } from 'pg';
import { createLockApp, dropLockTable, LockApp, useLockApp } from '../support/lock-app';
import { describeEachDatabase, TestDatabase, uniqueName } from '../support/test-databases';

const UUID_V4 = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

/** Watches every SQL text the database driver is handed (the driver itself still does the work). */
function watchSqlTexts(database: TestDatabase): { texts: string[]; stop(): void } {
  const texts: string[] = [];
  const watch = <T extends object>(prototype: T, method: keyof T, text: (args: unknown[]) => unknown) => {
    const original = prototype[method] as (...args: unknown[]) => unknown;
    prototype[method] = function (this: unknown, ...args: unknown[]) {
      texts.push(String(text(args)));
      return original.apply(this, args);
    } as T[keyof T];
    return () => (prototype[method] = original as T[keyof T]);
  };
  const mysqlText = ([sql]: unknown[]) => (typeof sql === 'string' ? sql : (sql as { sql: string }).sql);
  const stops = {
    postgres: () => [watch(Client.prototype, 'query', ([query]) => (typeof query === 'string' ? query : (query as { text: string }).text))],
    mysql: () => [watch(Connection.prototype, 'execute', mysqlText), watch(Connection.prototype, 'query', mysqlText)],
    sqlite: () => [watch(Database.prototype, 'prepare', ([sql]) => sql), watch(Database.prototype, 'exec', ([sql]) => sql)],
  }[database.kind]();
  return { texts, stop: () => stops.forEach((stop) => stop()) };
}

describeEachDatabase('Security', (database) => {
  const isolation = uniqueName('security');
  let app: LockApp;

  useLockApp(database, isolation, (started) => (app = started));

  it('gives every acquisition an unguessable owner token', async () => {
    const owners = new Set<string>();
    for (let i = 0; i < 200; i++) {
      const lock = await app.locks.getLock(`token-${i % 5}`);
      expect(lock.owner).toMatch(UUID_V4);
      owners.add(lock.owner!);
      await app.locks.unlock(lock);
    }
    expect(owners.size).toBe(200);
  });

  it('never splices a value into SQL text', async () => {
    const marker = `zz${randomBytes(6).toString('hex')}`;
    const watcher = watchSqlTexts(database);
    const owners: string[] = [];
    try {
      const name = `${marker}'; DROP TABLE ${isolation}; --`;
      const lock = await app.locks.getLock(name, { expires: 30, lockedBy: `${marker}-host`, lockProcess: 31337 });
      owners.push(lock.owner!);
      await app.locks.renewLock(lock, { expires: 60, addTime: true });
      await app.locks.isLocked(name);
      await app.locks.tryLock(name);
      const set = await app.locks.setLock([`${marker}-a`, `${marker}-b`], { timeout: 30, lockedBy: `${marker}-host` });
      owners.push(...set.locks.map((held) => held.owner!));
      await app.locks.withLock(`${marker}-managed`, async (manager) => {
        owners.push(manager.mainLock.owner!);
        await manager.lock(`${marker}-more`);
        await manager.renew();
      });
      await app.locks.listLocks();
      await app.locks.unlock(lock);
      await app.locks.unlock(`${marker}-a`);
      await app.locks.cleanLocks();
    } finally {
      watcher.stop();
    }
    expect(watcher.texts.length).toBeGreaterThan(5);
    for (const text of watcher.texts) {
      expect(text).not.toContain(marker);
      expect(text).not.toContain('31337');
      for (const owner of owners) expect(text).not.toContain(owner);
    }
    expect(await app.locks.isLocked(`${marker}-b`)).toBe(true);
  });

  it('quotes the table name it validated, so its case is kept', async () => {
    const mixedCase = `Locks_${randomBytes(3).toString('hex')}`;
    const other = await createLockApp(database, isolation, { tableName: mixedCase });
    try {
      await other.locks.getLock('case');
      const rows = await other.dataSource.query(`SELECT name FROM ${other.dataSource.driver.escape(mixedCase)}`);
      expect(rows).toEqual([{ name: 'case' }]);
    } finally {
      await other.close();
      await dropLockTable(database, isolation, mixedCase);
    }
  });
});
