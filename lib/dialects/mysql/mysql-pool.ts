import type { Connection as CoreConnection, ConnectionOptions, Pool as CorePool, PoolOptions } from 'mysql2';
import type { Pool, PoolConnection } from 'mysql2/promise';
import type { DataSource } from 'typeorm';
import { inTransaction, TransactionOutcome } from '../transaction';

/** The part of the mysql2 module the lock module uses. */
interface MysqlModule {
  createPool(options: PoolOptions): CorePool;
  createConnection(options: ConnectionOptions): CoreConnection;
}

export interface MysqlPoolOptions {
  poolSize: number;
  /** Seconds an operation may take, connecting included. */
  operationTimeout: number;
}

/** The mysql2 module the data source loaded, and the options of a connection of the lock module's to its server. */
export function mysqlConnectionOptions(dataSource: DataSource, options: MysqlPoolOptions): { mysql: MysqlModule; connection: PoolOptions } {
  const driver = dataSource.driver as unknown as {
    mysql: MysqlModule;
    options: { replication?: { master: object } };
    createConnectionOptions(options: object, credentials: object): PoolOptions;
  };
  const connection: PoolOptions = {
    ...driver.createConnectionOptions(driver.options, driver.options.replication?.master ?? driver.options),
    // Connecting gets half the operation's time, so an unreachable server fails an operation within it.
    connectTimeout: Math.ceil((options.operationTimeout * 1000) / 2),
    // The lock operations read rows their own way, whatever the app chose for its pool: times as
    // Dates in UTC, four-byte UTF-8 (emoji in names), values bound by name and never in the SQL text.
    timezone: 'Z',
    dateStrings: false,
    supportBigNumbers: true,
    bigNumberStrings: true,
    charset: 'UTF8MB4_GENERAL_CI',
    namedPlaceholders: true,
    multipleStatements: false,
    enableKeepAlive: true,
  };
  return { mysql: driver.mysql, connection };
}

/**
 * A pool of the module's own, built from the data source's connection options, with the session
 * settings and time limits of the lock operations.
 */
export function createMysqlPool(dataSource: DataSource, options: MysqlPoolOptions): Pool {
  const { mysql, connection } = mysqlConnectionOptions(dataSource, options);
  const core = mysql.createPool({
    ...connection,
    connectionLimit: options.poolSize,
    // The session settings below are made once per connection: a reset on release would drop them after
    // its first operation (READ COMMITTED, and the statement limits that keep an abandoned claim from committing late).
    resetOnRelease: false,
  });
  if (typeof core.promise !== 'function') {
    throw new Error(
      'nestjs-lockmgr talks to MySQL and MariaDB through the mysql2 driver, but the data source loaded another one: install mysql2 and set the data source option connectorPackage to "mysql2".',
    );
  }
  core.on('connection', (connection) => {
    // An idle connection the server dropped must not crash the app; the next query reconnects.
    connection.on('error', () => undefined);
    // Without gap locks, a clean-up that scans the table and a locking read of a free name block
    // nobody; every operation is correct under REPEATABLE READ too, only less concurrent.
    connection.query('SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED', () => undefined);
    // The server gives up on a statement when the client does, so a statement the client stopped waiting
    // for cannot commit much later, after its caller was told it failed: lock waits are bounded on both
    // servers, and MariaDB bounds whole statements too (MySQL has no such variable, hence no callback error).
    const seconds = options.operationTimeout;
    connection.query(`SET SESSION innodb_lock_wait_timeout = ${Math.ceil(seconds)}, lock_wait_timeout = ${Math.ceil(seconds)}`, () => undefined);
    connection.query(`SET SESSION max_statement_time = ${seconds}`, () => undefined);
  });
  return core.promise();
}

/**
 * Runs `work` on a connection of the pool, failing it once the operation timeout has passed,
 * waiting for a connection included. A connection still busy then is closed, not given back: a
 * server that stopped answering may still answer late, and that answer must reach no other operation.
 */
export async function withMysqlConnection<T>(pool: Pool, seconds: number, work: (connection: PoolConnection) => Promise<T>): Promise<T> {
  let connection: PoolConnection | undefined;
  let overran = false;
  let timer: NodeJS.Timeout | undefined;
  const operation = (async () => {
    connection = await pool.getConnection();
    if (overran) return connection.release();
    try {
      return await work(connection);
    } finally {
      // Gives a connection back to the pool unless it was closed meanwhile (then this does nothing).
      connection.release();
    }
  })();
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      overran = true;
      connection?.destroy();
      reject(new Error(`The database did not answer within ${seconds} seconds (the operationTimeout option).`));
    }, seconds * 1000);
  });
  // Once the deadline has passed, how the operation ends no longer matters.
  operation.catch(() => undefined);
  try {
    return (await Promise.race([operation, deadline])) as T;
  } finally {
    clearTimeout(timer);
  }
}

/** Runs `work` in a transaction on a connection of the pool, and commits only if it asks to. */
export function mysqlTransaction<T>(pool: Pool, seconds: number, work: (connection: PoolConnection) => Promise<TransactionOutcome<T>>): Promise<T> {
  return withMysqlConnection(pool, seconds, (connection) =>
    inTransaction(
      {
        begin: () => connection.beginTransaction(),
        commit: () => connection.commit(),
        rollback: () => connection.rollback(),
        // A connection that could not even roll back is closed; `withMysqlConnection` gives back the others.
        release: (broken) => broken && connection.destroy(),
      },
      () => work(connection),
    ),
  );
}
