import { DataSource } from 'typeorm';
import { openDialect } from '../../lib/dialects/create-dialect';
import { resolveLockMgrOptions } from '../../lib/lockmgr-options';
import { dropLockTable, sleep } from '../support/lock-app';
import { TestDatabase, uniqueName } from '../support/test-databases';
import type { ContractStore } from './contract-store';

/**
 * A database under the dialect contract: each table gets a data source of the app's kind, and each
 * dialect on it a pool (or SQLite connection) of its own, as separate app instances would. Time passes
 * for real: the database's clock decides expiry.
 */
export function databaseContractStore(database: TestDatabase): ContractStore {
  const dataSources = new Map<string, DataSource>();
  return {
    announcesReleases: database.kind === 'postgres',
    // PostgreSQL orders by the database's collation, which the library does not choose.
    ordersByCodePoint: database.kind !== 'postgres',
    async createTable() {
      const table = uniqueName('contract');
      const dataSource = new DataSource(database.dataSourceOptions(table));
      await dataSource.initialize();
      dataSources.set(table, dataSource);
      return table;
    },
    openDialect: (table) => openDialect(dataSources.get(table)!, resolveLockMgrOptions({ tableName: table })),
    async dropTable(table) {
      await dataSources.get(table)?.destroy();
      dataSources.delete(table);
      await dropLockTable(database, table);
    },
    async elapse(seconds) {
      await sleep(seconds * 1000);
    },
  };
}
