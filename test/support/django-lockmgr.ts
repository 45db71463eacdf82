import { DataSource } from 'typeorm';
import type { TestDatabase } from './test-databases';

/**
 * The lock table exactly as django-lockmgr 2.0's migration creates it (`manage.py sqlmigrate lockmgr`), per database.
 * On MariaDB the table takes the database's character set and collation: here those of a database made
 * with MariaDB's utf8mb4 defaults, as Django's documentation advises, whatever the test database's are.
 */
function djangoTableStatements(kind: TestDatabase['kind'], table: string): string[] {
  if (kind === 'postgres') {
    return [
      `CREATE TABLE "${table}" ("name" varchar(100) NOT NULL PRIMARY KEY, "locked_by" varchar(100) NULL, "lock_process" integer NULL, "locked_until" timestamp with time zone NULL, "created_at" timestamp with time zone NOT NULL, "updated_at" timestamp with time zone NOT NULL)`,
      `CREATE INDEX "${table}_name_like" ON "${table}" ("name" varchar_pattern_ops)`,
    ];
  }
  if (kind === 'mysql') {
    return [
      `CREATE TABLE \`${table}\` (\`name\` varchar(100) NOT NULL PRIMARY KEY, \`locked_by\` varchar(100) NULL, \`lock_process\` integer NULL, \`locked_until\` datetime(6) NULL, \`created_at\` datetime(6) NOT NULL, \`updated_at\` datetime(6) NOT NULL) DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_general_ci`,
    ];
  }
  return [
    `CREATE TABLE "${table}" ("name" varchar(100) NOT NULL PRIMARY KEY, "locked_by" varchar(100) NULL, "lock_process" integer NULL, "locked_until" datetime NULL, "created_at" datetime NOT NULL, "updated_at" datetime NOT NULL)`,
  ];
}

export interface DjangoLockOptions {
  /** Seconds from now, negative for an expired lock; null: never expires. */
  expires: number | null;
  lockedBy?: string;
  lockProcess?: number;
}

/**
 * A Django service running django-lockmgr beside the Nest app: it knows only its own columns, and
 * writes times in UTC from its own clock, as the Django ORM does (`timezone.now()` with USE_TZ).
 *
 * With `localTimeOffsetHours`, it is a Django service with USE_TZ = False whose TIME_ZONE is that many
 * hours east of UTC: it writes local wall-clock times. On PostgreSQL Django then sets its connections'
 * time zone to TIME_ZONE, so the `timestamp with time zone` columns still get the right instant.
 */
export class DjangoService {
  private constructor(
    private readonly database: TestDatabase,
    private readonly dataSource: DataSource,
    readonly table: string,
    private readonly localTimeOffsetHours: number | undefined,
  ) {}

  /** Connects to the database, for the lock table `table`. */
  static async connect(database: TestDatabase, isolation: string, table: string, localTimeOffsetHours?: number): Promise<DjangoService> {
    const options = database.dataSourceOptions(isolation);
    // The POSIX names of fixed offsets count hours west of UTC.
    const timeZone = localTimeOffsetHours === undefined ? undefined : `Etc/GMT${localTimeOffsetHours > 0 ? '-' : '+'}${Math.abs(localTimeOffsetHours)}`;
    const dataSource = await new DataSource(
      database.kind === 'postgres' && timeZone ? { ...options, extra: { options: `-c TimeZone=${timeZone}` } } : options,
    ).initialize();
    return new DjangoService(database, dataSource, table, localTimeOffsetHours);
  }

  /** Runs django-lockmgr's migration: creates the table with Django's DDL. */
  async migrate(): Promise<void> {
    for (const statement of djangoTableStatements(this.database.kind, this.table)) await this.dataSource.query(statement);
  }

  /** Reverses django-lockmgr's migration (`manage.py migrate lockmgr zero`): drops its table, whatever columns it has. */
  async unmigrate(): Promise<void> {
    await this.dataSource.query(`DROP TABLE IF EXISTS ${this.quoted}`);
  }

  async stop(): Promise<void> {
    await this.dataSource.destroy();
  }

  /** `Lock.objects.create(…)`: an INSERT of Django's columns only. */
  async insertLock(name: string, { expires, lockedBy = 'django-host', lockProcess = 4321 }: DjangoLockOptions): Promise<void> {
    const now = Date.now();
    const until = expires === null ? null : this.time(now + expires * 1000);
    await this.dataSource.query(
      `INSERT INTO ${this.quoted} (name, locked_by, lock_process, locked_until, created_at, updated_at) VALUES (${this.placeholders(6)})`,
      [name, lockedBy, lockProcess, until, this.time(now), this.time(now)],
    );
  }

  /**
   * django-lockmgr's `get_lock`: deletes expired locks, looks for the name FOR UPDATE in a transaction,
   * and inserts it if missing. Says whether Django got the lock (false: it would raise `Locked`).
   */
  async getLock(name: string, expires: number): Promise<boolean> {
    const runner = this.dataSource.createQueryRunner();
    await runner.startTransaction();
    try {
      await runner.query(`DELETE FROM ${this.quoted} WHERE locked_until < ${this.placeholders(1)}`, [this.time(Date.now())]);
      const held = await runner.query(`SELECT name FROM ${this.quoted} WHERE name = ${this.placeholders(1)} FOR UPDATE`, [name]);
      if (held.length > 0) {
        await runner.rollbackTransaction();
        return false;
      }
      const now = Date.now();
      await runner.query(
        `INSERT INTO ${this.quoted} (name, locked_by, lock_process, locked_until, created_at, updated_at) VALUES (${this.placeholders(6)})`,
        [name, 'django-host', 4321, this.time(now + expires * 1000), this.time(now), this.time(now)],
      );
      await runner.commitTransaction();
      return true;
    } catch (error) {
      await runner.rollbackTransaction();
      throw error;
    } finally {
      await runner.release();
    }
  }

  /** Every row, with the columns nestjs-lockmgr added, by name. */
  async rows(): Promise<{ name: string; owner: string; fencing_token: string | number; locked_until: unknown }[]> {
    return this.dataSource.query(`SELECT * FROM ${this.quoted} ORDER BY name`);
  }

  private get quoted(): string {
    return this.dataSource.driver.escape(this.table);
  }

  private placeholders(count: number): string {
    return Array.from({ length: count }, (_, i) => (this.database.kind === 'postgres' ? `$${i + 1}` : '?')).join(', ');
  }

  /**
   * What Django sends for an aware datetime: a timestamp with zone to PostgreSQL, naive UTC text to MySQL and SQLite.
   * With USE_TZ = False: naive local text, which PostgreSQL reads in the connection's time zone.
   */
  private time(epochMs: number): Date | string {
    if (this.database.kind === 'postgres' && this.localTimeOffsetHours === undefined) return new Date(epochMs);
    const local = new Date(epochMs + (this.localTimeOffsetHours ?? 0) * 3_600_000);
    return local.toISOString().replace('T', ' ').replace('Z', '');
  }
}
