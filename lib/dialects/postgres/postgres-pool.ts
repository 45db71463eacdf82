import type { Client, ClientConfig, Pool, PoolClient, PoolConfig } from 'pg';
import type { DataSource } from 'typeorm';
import { inTransaction, TransactionOutcome } from '../transaction';
import { namedConnection } from './postgres-application-name';

/**
 * How long a connection of the module's (of the lock pool, or the listener) stays open unused. Dozens of
 * instances then keep no connection open for the lock module while they have nothing to lock.
 */
export const IDLE_CONNECTION_MS = 10_000;

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

/** What the pool's connections reach, found out at start-up by `probePostgresServer`. */
export interface PostgresServer {
  /** A connection pooler in front of PostgreSQL: a session lasts one transaction at most. */
  pooled: boolean;
  /** The server takes the operation's limit as a setting of the connection (a pooler refuses it). */
  statementTimeout: boolean;
  /** The schema that unqualified names resolve to (the first of the search path that exists); null: none. */
  currentSchema: string | null;
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
  // Its size and idle time are the module's, whatever the app gave its own pool.
  const pool = new driver.postgres.Pool(
    namedConnection({ ...connection, max: options.poolSize, min: 0, idleTimeoutMillis: IDLE_CONNECTION_MS }, 'nestjs-lockmgr'),
  );
  // An idle connection the server dropped must not crash the app; the next query reconnects.
  pool.on('error', () => undefined);
  return { pool, connection, createClient: (config) => new driver.postgres.Client(config) };
}

/** PgBouncer's answer to a startup parameter it does not pass on. */
function refusesStatementTimeout(error: unknown): boolean {
  return /unsupported startup parameter.*statement_timeout/i.test((error as Error)?.message ?? '');
}

/**
 * Finds out, on one connection of the pool, whether it reaches PostgreSQL itself or a connection pooler.
 * A pooler that refuses `statement_timeout` as a connection setting has it dropped from the pool's
 * settings. A pooler that passes it on still answers with a process id of its own at connection
 * (PgBouncer, Supavisor and RDS Proxy each relay cancel requests themselves): PostgreSQL's is its
 * backend's.
 */
export async function probePostgresServer(postgres: PostgresPool): Promise<PostgresServer> {
  const pool = postgres.pool as Pool & { options: PoolConfig };
  let statementTimeout = postgres.connection.statement_timeout !== undefined;
  let client: PoolClient;
  try {
    client = await pool.connect();
  } catch (error) {
    if (!refusesStatementTimeout(error)) throw error;
    delete pool.options.statement_timeout;
    delete postgres.connection.statement_timeout;
    statementTimeout = false;
    client = await pool.connect();
  }
  try {
    const { rows } = await client.query('SELECT pg_backend_pid() AS pid, current_schema() AS schema');
    const announced = (client as unknown as { processID: number | null }).processID;
    client.release();
    return { pooled: !statementTimeout || rows[0].pid !== announced, statementTimeout, currentSchema: rows[0].schema };
  } catch (error) {
    client.release(true);
    throw error;
  }
}

/**
 * Runs one statement of the lock operations. `prepared` gives it a name, scoped to the lock table since
 * its text names the table: PostgreSQL then parses and plans it once per connection. Behind a pooler a
 * connection is a different server session from one transaction to the next, where a name is unknown
 * or, worse, stands for another app's statement: there every statement is sent whole (unnamed), still
 * in one round trip.
 */
export function runStatement(
  executor: PostgresExecutor,
  prepared: boolean,
  tableName: string,
  key: string,
  text: string,
  values: unknown[],
) {
  return executor.query(prepared ? { name: `lockmgr:${tableName}:${key}`, text, values } : { text, values });
}

/**
 * Runs `work` in a transaction on a connection of the pool, and commits only if it asks to. `limitMs`,
 * when the connections do not carry the operation's limit (behind a pooler), limits each statement
 * of the transaction instead, set in the same round trip as its BEGIN.
 */
export async function postgresTransaction<T>(
  pool: Pool,
  work: (client: PoolClient) => Promise<TransactionOutcome<T>>,
  limitMs?: number,
): Promise<T> {
  const client = await pool.connect();
  const begin = limitMs === undefined ? 'BEGIN' : `BEGIN; SET LOCAL statement_timeout = ${Math.ceil(limitMs)}`;
  return inTransaction(
    {
      begin: () => client.query(begin),
      commit: () => client.query('COMMIT'),
      rollback: () => client.query('ROLLBACK'),
      release: (broken) => client.release(broken),
    },
    () => work(client),
  );
}
