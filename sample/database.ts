import { join } from 'node:path';
import { DatabaseTarget, parseDatabaseUrl } from '../lib/cli/database-url';

/**
 * The sample's database: the one DATABASE_URL names, read as the `nestjs-lockmgr` command reads it
 * (PostgreSQL, MySQL/MariaDB or an SQLite file; no message shows its password), otherwise the embedded
 * default, an SQLite file that every instance on this host shares (no server to set up).
 */
export function sampleDatabase(): DatabaseTarget {
  const url = process.env.DATABASE_URL;
  if (url) return parseDatabaseUrl(url, 'DATABASE_URL');
  const file = process.env.SQLITE_FILE ?? join(process.cwd(), 'sample.sqlite');
  return { options: { type: 'better-sqlite3', database: file }, description: `SQLite file ${file}` };
}
