import type { Client, ClientConfig, Pool, PoolClient, PoolConfig } from 'pg';
import type { DataSource } from 'typeorm';
import { inTransaction, TransactionOutcome } from '../transaction';

export interface PostgresPoolOptions {
  poolSize: number;
  /** Seconds an operation may take, connecting included. */
  operationTimeout: number;
}

/** Where a statement runs: any connection of the pool, or the one a transaction holds. */
export type PostgresExecutor = Pick<Pool, 'query'> | PoolClient;

/** The lock operations' pool, and how to open a connection of the same settings outside it. */
export interface PostgresPool {
  pool: Pool;
  /** The settings of the pool's connections. */
  connection: PoolConfig;
  createClient(config: ClientConfig): Client;
}

/**
 * A pool of our own, with the app's connection settings: a lock operation must not queue behind, or
 * deadlock with, app transactions that hold every connection of the app's pool while they wait for a lock.
 */
export function createPostgresPool(dataSource: DataSource, options: PostgresPoolOptions): PostgresPool {
  const driver = dataSource.driver as unknown as { master: Pool & { options: PoolConfig }; postgres: typeof import('pg') };
  // Connecting and answering each get half the operation's time, so an unreachable or frozen
  // database fails an operation within it instead of hanging.
  // The server gives up on a statement when the client does (statement_timeout), so a statement the
  // client stopped waiting for cannot commit much later, after its caller was told it failed.
  const halfTimeout = Math.ceil((options.operationTimeout * 1000) / 2);
  const connection: PoolConfig = {
    ...driver.master.options,
    connectionTimeoutMillis: halfTimeout,
    query_timeout: halfTimeout,
    statement_timeout: halfTimeout,
    keepAlive: true,
  };
  const pool = new driver.postgres.Pool({ ...connection, max: options.poolSize });
  // An idle connection the server dropped must not crash the app; the next query reconnects.
  pool.on('error', () => undefined);
  return { pool, connection, createClient: (config) => new driver.postgres.Client(config) };
}

/**
 * Runs a prepared statement: PostgreSQL parses and plans it once per connection. Its name, `key`, is
 * scoped to the lock table, since the statement's text names the table.
 */
export function runPrepared(executor: PostgresExecutor, tableName: string, key: string, text: string, values: unknown[]) {
  return executor.query({ name: `lockmgr:${tableName}:${key}`, text, values });
}

/** Runs `work` in a transaction on a connection of the pool, and commits only if it asks to. */
export async function postgresTransaction<T>(pool: Pool, work: (client: PoolClient) => Promise<TransactionOutcome<T>>): Promise<T> {
  const client = await pool.connect();
  return inTransaction(
    {
      begin: () => client.query('BEGIN'),
      commit: () => client.query('COMMIT'),
      rollback: () => client.query('ROLLBACK'),
      release: (broken) => client.release(broken),
    },
    () => work(client),
  );
}
