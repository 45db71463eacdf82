import { join } from 'node:path';
import type { DataSourceOptions } from 'typeorm';

/**
 * The sample's database: PostgreSQL or MySQL/MariaDB when DATABASE_URL names one, otherwise the
 * embedded default, an SQLite file that every instance on this host shares (no server to set up).
 */
export function sampleDataSourceOptions(): DataSourceOptions {
  const url = process.env.DATABASE_URL;
  if (!url) return { type: 'better-sqlite3', database: process.env.SQLITE_FILE ?? join(process.cwd(), 'sample.sqlite') };
  const scheme = new URL(url).protocol.replace(/:$/, '');
  if (scheme === 'postgres' || scheme === 'postgresql') return { type: 'postgres', url };
  if (scheme === 'mysql' || scheme === 'mariadb') return { type: scheme, url };
  throw new Error(`DATABASE_URL must be a postgres://, mysql:// or mariadb:// URL, got "${scheme}://…".`);
}

export function describeDatabase(options: DataSourceOptions): string {
  return options.type === 'better-sqlite3' ? `SQLite file ${options.database}` : `${options.type} at ${new URL(process.env.DATABASE_URL!).host}`;
}
