import { hostname } from 'node:os';
import { checkBoolean, checkExpires, checkIdentifier, checkOptions, checkSeconds, checkText, MAX_WAIT_SECONDS } from './validation';

/** What `LockMgrModule.forRoot` (or the factory of `forRootAsync`) configures. */
export interface LockMgrModuleOptions {
  /** Name of the lock table. Default `'lockmgr_lock'`; a plain identifier of at most 40 characters. */
  tableName?: string;
  /** Lease of a lock, in seconds, when a call does not say (django-lockmgr's 600). 0 makes locks never expire. */
  defaultExpires?: number;
  /** Recorded as `locked_by` on every lock this app takes. Default: the host name. */
  lockedBy?: string;
  /**
   * Seconds between deletions of expired rows (needs `ScheduleModule` imported); each run starts at a random
   * moment of the first half of its interval. 0 turns it off. Default 60.
   */
  cleanupInterval?: number;
  /** Create the lock table (or add the columns it lacks) at start-up. Default true. */
  ensureTable?: boolean;
  /**
   * Connections of the lock operations' own pool (PostgreSQL, MySQL). Default 1, so that dozens of instances
   * fit one server's connections: calls beyond it queue for a connection, and one that has not got it in time
   * fails with `LockDatabaseError` (PostgreSQL: half of `operationTimeout`; MySQL: `operationTimeout`, the call
   * included). Raise it for an instance that makes many lock calls at once (docs/deploying.md, "Connection budget").
   */
  poolSize?: number;
  /**
   * Wake waiters in other processes when a lock is released, so they get it within milliseconds:
   * PostgreSQL announces releases with LISTEN/NOTIFY; MariaDB interrupts the waiting app's watching
   * connection (one more connection per app, only while it waits); SQLite watches the database
   * file's write-ahead log. False: waiters in other processes poll (so do MySQL's). Default true.
   */
  notify?: boolean;
  /**
   * PostgreSQL behind a transaction-mode connection pooler (PgBouncer, Supavisor, RDS Proxy): a
   * postgres:// URL of a direct connection to the same database, used only to LISTEN for releases,
   * so waiters get a released lock within milliseconds. Without it, a listener that gets no
   * notifications is found out when it connects, and waiters poll (with one warning).
   */
  listenUrl?: string;
  /**
   * PostgreSQL: send the lock operations as named prepared statements, parsed and planned once per
   * connection. Default: yes on a direct connection, no behind a connection pooler (detected at start-up),
   * where a name prepared in one server session is unknown in the next.
   */
  preparedStatements?: boolean;
  /** The longest pause, in seconds, between two attempts of a waiting acquirer (attempts back off to it). Default 1. */
  pollInterval?: number;
  /**
   * Seconds one lock operation may take, connecting included, before it fails with `LockDatabaseError`
   * (a database that is down, restarting or unreachable). Default 5.
   */
  operationTimeout?: number;
  /**
   * Register `LockedErrorFilter` for the app, so that a `LockedError` escaping a handler answers 423 Locked
   * with `Retry-After` over HTTP (and its context's error elsewhere). False leaves it to the app. Default true.
   */
  lockedErrorFilter?: boolean;
  /**
   * Record OpenTelemetry metrics of the lock table (acquisitions, holds, losses, skipped runs) when
   * `@opentelemetry/api` is installed; false turns them off. Default true.
   */
  telemetry?: boolean;
}

export interface ResolvedLockMgrOptions {
  tableName: string;
  /** null: never expires. */
  defaultExpires: number | null;
  lockedBy: string;
  cleanupInterval: number;
  ensureTable: boolean;
  poolSize: number;
  notify: boolean;
  listenUrl?: string;
  /** Undefined: detected at start-up. */
  preparedStatements?: boolean;
  pollInterval: number;
  operationTimeout: number;
  lockedErrorFilter: boolean;
  telemetry: boolean;
}

/** The names `LockMgrModule.forRoot` accepts as options; any other name is refused at start-up. */
export const MODULE_OPTION_NAMES = [
  'tableName',
  'defaultExpires',
  'lockedBy',
  'cleanupInterval',
  'ensureTable',
  'poolSize',
  'notify',
  'listenUrl',
  'preparedStatements',
  'pollInterval',
  'operationTimeout',
  'lockedErrorFilter',
  'telemetry',
] as const;

/** The table name is spliced into SQL, and suffixed to name its sequence or counter: PostgreSQL caps names at 63 characters. */
export const MAX_TABLE_NAME_LENGTH = 40;

/** django-lockmgr's table, which a Nest app shares by default. */
export const DEFAULT_TABLE_NAME = 'lockmgr_lock';

/** Checks the module options once, at start-up, so that a mistake stops the app with a message naming the option. */
export function resolveLockMgrOptions(options: unknown, module = 'LockMgrModule'): ResolvedLockMgrOptions {
  const given = checkOptions<LockMgrModuleOptions>(options, `${module} options`, MODULE_OPTION_NAMES);
  const poolSize = given.poolSize ?? 1;
  if (!Number.isInteger(poolSize) || poolSize < 1 || poolSize > 1000) {
    throw new RangeError(`${module} option poolSize must be an integer from 1 to 1000, got ${String(poolSize)}.`);
  }
  return {
    tableName: checkIdentifier(given.tableName ?? DEFAULT_TABLE_NAME, `${module} option tableName`, MAX_TABLE_NAME_LENGTH),
    defaultExpires:
      given.defaultExpires === undefined ? 600 : checkExpires(given.defaultExpires, `${module} option defaultExpires`),
    lockedBy: checkText(given.lockedBy, `${module} option lockedBy`) ?? hostname(),
    // The interval is a Node timer, which cannot be longer than MAX_WAIT_SECONDS.
    cleanupInterval: checkSeconds(given.cleanupInterval ?? 60, `${module} option cleanupInterval`, MAX_WAIT_SECONDS),
    ensureTable: checkBoolean(given.ensureTable, `${module} option ensureTable`) ?? true,
    poolSize,
    notify: checkBoolean(given.notify, `${module} option notify`) ?? true,
    listenUrl: checkDatabaseUrl(given.listenUrl, `${module} option listenUrl`),
    preparedStatements: checkBoolean(given.preparedStatements, `${module} option preparedStatements`),
    pollInterval: checkSeconds(given.pollInterval ?? 1, `${module} option pollInterval`, 3600, 0.01),
    operationTimeout: checkSeconds(given.operationTimeout ?? 5, `${module} option operationTimeout`, 600, 0.1),
    lockedErrorFilter: checkBoolean(given.lockedErrorFilter, `${module} option lockedErrorFilter`) ?? true,
    telemetry: checkBoolean(given.telemetry, `${module} option telemetry`) ?? true,
  };
}

function checkDatabaseUrl(value: unknown, argument: string): string | undefined {
  const url = checkText(value, argument, 2000);
  if (url !== undefined && !/^postgres(ql)?:\/\/./.test(url)) {
    throw new RangeError(`${argument} must be a postgres:// URL, got a text that does not start with postgres:// or postgresql://.`);
  }
  return url;
}
