import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { DataSourceOptions } from 'typeorm';
import { UsageError } from './command';

/** A database the command can open: TypeORM's options, and how to name it to people (without credentials). */
export interface DatabaseTarget {
  options: DataSourceOptions;
  description: string;
}

/** How the help describes the values `--url` accepts. */
export const DATABASE_URL_FORMS =
  'postgres://… or postgresql://…, mysql://… or mariadb://…, or an SQLite file: sqlite:PATH, file:PATH, file:///ABSOLUTE/PATH or just PATH';

/** A server that does not answer must not keep the operator waiting for long. */
const CONNECT_TIMEOUT_MS = 10_000;

const SERVERS: Record<string, { type: 'postgres' | 'mysql' | 'mariadb'; label: string }> = {
  postgres: { type: 'postgres', label: 'PostgreSQL' },
  postgresql: { type: 'postgres', label: 'PostgreSQL' },
  mysql: { type: 'mysql', label: 'MySQL' },
  mariadb: { type: 'mariadb', label: 'MariaDB' },
};

/**
 * Reads `--url` (or `DATABASE_URL`, whichever `argument` names), without the blanks around it. Two
 * letters or more before a colon make a scheme, so a Windows drive letter still reads as a path. No
 * message echoes the value: it may hold a password.
 */
export function parseDatabaseUrl(value: string, argument: string): DatabaseTarget {
  const text = value.trim();
  if (text === '') throw new UsageError(`${argument} is empty; give ${DATABASE_URL_FORMS}.`);
  const scheme = /^([a-z][a-z0-9+.-]+):/i.exec(text)?.[1].toLowerCase();
  if (scheme === undefined) return sqliteTarget(checkPlainPath(text, argument), argument);
  if (scheme === 'sqlite' || scheme === 'file') return sqliteTarget(sqlitePath(text.slice(scheme.length + 1), argument), argument);
  const server = SERVERS[scheme];
  const hasAuthority = text.slice(scheme.length + 1).startsWith('//');
  if (!server) {
    // In `USER:PASSWORD@HOST`, what reads as a scheme is a user name.
    if (!hasAuthority) checkPlainPath(text, argument);
    throw new UsageError(`${argument} has the unsupported scheme "${scheme}:"; give ${DATABASE_URL_FORMS}.`);
  }
  if (!hasAuthority) {
    throw new UsageError(`${argument} lacks the "//" of "${scheme}://": write ${serverUrlForm(scheme)}.`);
  }
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new UsageError(`${argument} is not a valid ${scheme}:// URL.`);
  }
  if (url.hostname === '') throw new UsageError(`${argument} names no host: write ${serverUrlForm(scheme)}.`);
  let database: string;
  try {
    database = decodeURIComponent(url.pathname.slice(1));
  } catch {
    throw new UsageError(`${argument} has a malformed %-escape in its database name.`);
  }
  const description = `${server.label}${database ? ` database "${database}"` : ''} at ${url.host}`;
  const options: DataSourceOptions =
    server.type === 'postgres'
      ? { type: 'postgres', url: text, connectTimeoutMS: CONNECT_TIMEOUT_MS }
      : { type: server.type, url: text, connectTimeout: CONNECT_TIMEOUT_MS };
  return { options, description };
}

function serverUrlForm(scheme: string): string {
  return `${scheme}://USER:PASSWORD@HOST:PORT/DATABASE`;
}

/**
 * A value without a scheme is an SQLite path, unless it is a server URL mistyped: read as a path, it
 * would fail later with a message quoting it, password and all.
 */
function checkPlainPath(text: string, argument: string): string {
  const misspelled = /^([a-z]+)\/\//i.exec(text)?.[1].toLowerCase();
  if (misspelled !== undefined && misspelled in SERVERS) {
    throw new UsageError(`${argument} lacks the ":" of "${misspelled}://": write ${serverUrlForm(misspelled)}.`);
  }
  // After a Windows drive letter, which is not a user name.
  const path = text.replace(/^[a-z]:[\\/]/i, '');
  if (path.includes('://') || /[^\s:@/\\]+:[^\s@]*@/.test(path)) {
    throw new UsageError(`${argument} has no scheme, yet holds a URL's "://" or "USER:PASSWORD@"; give ${DATABASE_URL_FORMS}.`);
  }
  return text;
}

/** `sqlite:` and `file:` are followed by a path, or by `//` and a file URL's path (`file:///var/app.sqlite`). */
function sqlitePath(rest: string, argument: string): string {
  if (!rest.startsWith('//')) return rest;
  try {
    return fileURLToPath(`file:${rest}`);
  } catch (error) {
    throw new UsageError(`${argument} is not a valid file URL: ${(error as Error).message}`);
  }
}

function sqliteTarget(path: string, argument: string): DatabaseTarget {
  if (path === '') throw new UsageError(`${argument} gives no SQLite file path.`);
  if (path.startsWith(':memory:')) {
    throw new UsageError(`${argument} names an in-memory SQLite database, which no app shares; give the app's database file.`);
  }
  const file = resolve(path);
  return { options: { type: 'better-sqlite3', database: file }, description: `SQLite file ${file}` };
}
