import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { DataSourceOptions } from 'typeorm';
import { UsageError } from './command';
import { MYSQL_URL_PARAMETERS, mysqlConnection } from './mysql-url';
import { POSTGRES_URL_PARAMETERS, postgresConnection } from './postgres-url';
import { readServerUrl, ServerConnection, ServerUrl, serverUrlForm } from './server-url';
import type { ParameterSpellings } from './url-parameters';

/** A database the command can open: TypeORM's options, and how to name it to people (without credentials). */
export interface DatabaseTarget {
  options: DataSourceOptions;
  description: string;
}

/** How the help describes the values `--url` accepts. */
export const DATABASE_URL_FORMS =
  'postgres://… or postgresql://…, mysql://… or mariadb://…, or an SQLite file: sqlite:PATH, file:PATH, file:///ABSOLUTE/PATH or just PATH';

interface Server {
  label: string;
  parameters: ParameterSpellings;
  connection(url: ServerUrl, scheme: string, schema: string | undefined): ServerConnection;
}

const POSTGRES: Server = { label: 'PostgreSQL', parameters: POSTGRES_URL_PARAMETERS, connection: postgresConnection };

/** The MySQL family: the lock table's schema is the URL's database. */
const mysqlServer = (type: 'mysql' | 'mariadb', label: string): Server => ({
  label,
  parameters: MYSQL_URL_PARAMETERS,
  connection: (url, scheme, schema) => {
    if (schema !== undefined) throw new UsageError(`--schema is for PostgreSQL; on ${label} the lock table's database is the one the URL names.`);
    return mysqlConnection(url, scheme, type);
  },
});

const SERVERS: Record<string, Server> = {
  postgres: POSTGRES,
  postgresql: POSTGRES,
  mysql: mysqlServer('mysql', 'MySQL'),
  mariadb: mysqlServer('mariadb', 'MariaDB'),
};

/**
 * Reads `--url` (or `DATABASE_URL`, whichever `argument` names), without the blanks around it, and
 * `--schema` (PostgreSQL's). Two letters or more before a colon make a scheme, so a Windows drive
 * letter still reads as a path. No message echoes the value: it may hold a password.
 */
export function parseDatabaseUrl(value: string, argument: string, schema?: string): DatabaseTarget {
  const text = value.trim();
  if (text === '') throw new UsageError(`${argument} is empty; give ${DATABASE_URL_FORMS}.`);
  const scheme = /^([a-z][a-z0-9+.-]+):/i.exec(text)?.[1].toLowerCase();
  if (scheme === undefined || scheme === 'sqlite' || scheme === 'file') {
    const path = scheme === undefined ? checkPlainPath(text, argument) : sqlitePath(text.slice(scheme.length + 1), argument);
    if (schema !== undefined) throw new UsageError('--schema is for PostgreSQL; an SQLite file has no schemas.');
    return sqliteTarget(path, argument);
  }
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
  const url = readServerUrl(text, scheme, argument, server.parameters);
  const { options, address, schema: tableSchema } = server.connection(url, scheme, schema);
  const database = url.database ? ` database "${url.database}"` : '';
  return { options, description: `${server.label}${database} at ${address}${tableSchema ? `, schema "${tableSchema}"` : ''}` };
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
