import { NestFactory } from '@nestjs/core';
import { existsSync } from 'node:fs';
import { DataSource } from 'typeorm';
import { LockMgrModule } from '../lockmgr.module';
import { LockService } from '../lock.service';
import type { DatabaseTarget } from './database-url';

/** The database could not be opened, or holds no usable lock table. */
export class ConnectionError extends Error {}

export interface LockConnection {
  locks: LockService;
  close(): Promise<void>;
}

/**
 * Opens the lock table the way an app does, through `LockMgrModule` in a Nest application context,
 * so every command runs the library's own code. The command connects its data source itself: a
 * server that does not answer fails at once (TypeOrmModule would retry for half a minute), and the
 * error can say whether the database or the lock table is at fault. It never creates the table:
 * a typo in `--table` must not leave a new, empty lock table behind.
 */
export async function openLockConnection(target: DatabaseTarget, tableName: string): Promise<LockConnection> {
  const { options, description } = target;
  // SQLite would create a missing file: a mistyped path must fail instead.
  if (options.type === 'better-sqlite3' && !existsSync(options.database)) {
    throw new ConnectionError(`The SQLite file ${options.database} does not exist.`);
  }
  const dataSource = new DataSource(options);
  try {
    await dataSource.initialize();
  } catch (error) {
    throw new ConnectionError(`Could not connect to the ${description}: ${messageOf(error)}`);
  }
  try {
    const app = await NestFactory.createApplicationContext(
      LockMgrModule.forRoot({ dataSource, tableName, ensureTable: false, cleanupInterval: 0 }),
      { logger: false, abortOnError: false },
    );
    return {
      locks: app.get(LockService),
      close: async () => {
        await app.close();
        await dataSource.destroy();
      },
    };
  } catch (error) {
    await dataSource.destroy();
    // The app's advice (turn on ensureTable) does not fit here: the likelier cause is another table name.
    const schema = options.type === 'postgres' ? '; if it is in another schema, name that with --schema' : '';
    const hint = /does not exist/.test(messageOf(error)) ? ` If the app names its lock table otherwise (its tableName option), give that name with --table${schema}.` : '';
    throw new ConnectionError(`In the ${description}: ${messageOf(error)}${hint}`);
  }
}

function messageOf(error: unknown): string {
  // Some drivers throw an AggregateError with an empty message (one error per address tried).
  if (error instanceof AggregateError && !error.message) return error.errors.map(messageOf).join('; ');
  return error instanceof Error ? error.message : String(error);
}
