import type { DataSourceOptions } from 'typeorm';
import { checkIdentifier } from '../validation';
import { UsageError } from './command';
import { CONNECT_TIMEOUT_MS, hostAndPort, ServerConnection, ServerUrl, serverUrlForm } from './server-url';
import { tlsOptions } from './tls-options';
import type { ParameterSpellings, UrlParameters } from './url-parameters';

/** libpq's names for the parameters a `postgres://` URL takes here. */
export const POSTGRES_URL_PARAMETERS: ParameterSpellings = {
  host: 'host',
  port: 'port',
  sslmode: 'sslmode',
  sslrootcert: 'sslrootcert',
  sslcert: 'sslcert',
  sslkey: 'sslkey',
  options: 'options',
};

const SSL_MODES = { disable: 'disable', require: 'require', 'verify-ca': 'verify-ca', 'verify-full': 'verify-full' } as const;

/** libpq's modes that fall back to plaintext: node-postgres cannot, and a URL must not silently mean less than it says. */
const FALLBACK_SSL_MODES = {
  allow: 'tries plaintext, then TLS: node-postgres does one or the other',
  prefer: 'tries TLS, then plaintext: node-postgres does one or the other',
};

/** PostgreSQL's longest identifier. */
const MAX_SCHEMA_LENGTH = 63;

/**
 * A `postgres://` URL as libpq reads it: the host may be a Unix socket's directory, in the URL
 * (`postgres://app@%2Fvar%2Frun%2Fpostgresql/app`) or as its `host` parameter
 * (`postgres:///app?host=/var/run/postgresql`). `schema` is `--schema`; `options=-c search_path=NAME`
 * names the schema too.
 */
export function postgresConnection(url: ServerUrl, scheme: string, schema: string | undefined): ServerConnection {
  const { parameters } = url;
  const { argument } = parameters;
  const host = once(url.host || undefined, parameters.value('host'), `${argument} names the host twice, before the path and as its host parameter`);
  if (host === undefined || host === '') {
    throw new UsageError(
      `${argument} names no host: write ${serverUrlForm(scheme)}, or ${scheme}:///DATABASE?host=/SOCKET/DIRECTORY for a Unix socket.`,
    );
  }
  if (host.includes(',')) throw new UsageError(`${argument} names several hosts; give one.`);
  const port = once(url.port, parameterPort(parameters), `${argument} gives the port twice, after the host and as its port parameter`);
  const options: Extract<DataSourceOptions, { type: 'postgres' }> = {
    type: 'postgres',
    host,
    port,
    username: url.username,
    password: url.password,
    database: url.database,
    schema: once(
      schema === undefined ? undefined : checkIdentifier(schema, '--schema', MAX_SCHEMA_LENGTH),
      searchPathSchema(parameters),
      `--schema and the search_path of ${argument}'s options parameter both name the schema`,
    ),
    ssl: tlsOptions(parameters.choice('sslmode', SSL_MODES, FALLBACK_SSL_MODES), parameters, { ca: 'sslrootcert', cert: 'sslcert', key: 'sslkey' }),
    connectTimeoutMS: CONNECT_TIMEOUT_MS,
  };
  // A socket's directory is a path, as libpq tells them apart.
  const address = host.startsWith('/') ? `${host}${port === undefined ? '' : ` (port ${port})`}` : hostAndPort(host, port);
  return { options, address, schema: options.schema };
}

/** A setting the URL (or the command line) may give in two places, but once. */
function once<T>(first: T | undefined, second: T | undefined, twice: string): T | undefined {
  if (first !== undefined && second !== undefined) throw new UsageError(`${twice}; give it once.`);
  return first ?? second;
}

function parameterPort(parameters: UrlParameters): number | undefined {
  const value = parameters.value('port');
  if (value === undefined) return undefined;
  const port = Number(value);
  if (!/^\d+$/.test(value) || port < 1 || port > 65535) {
    throw new UsageError(`${parameters.argument} parameter port must be a port number (1 to 65535), got ${JSON.stringify(value)}.`);
  }
  return port;
}

/**
 * The schema of `options=-c search_path=NAME`, libpq's way of setting a connection's search path: the
 * lock table's schema is its one schema. Unquoted, PostgreSQL folds the name to lower case, and so
 * does this. Any other server setting is refused rather than dropped.
 */
function searchPathSchema(parameters: UrlParameters): string | undefined {
  const value = parameters.value('options');
  if (value === undefined) return undefined;
  const name = /^\s*-c\s*search_path\s*=\s*(\S+)\s*$/.exec(value)?.[1];
  if (name === undefined) {
    throw new UsageError(
      `${parameters.argument} parameter options may only set the lock table's schema, as "-c search_path=SCHEMA", got ${JSON.stringify(value)}.`,
    );
  }
  if (name.includes(',')) {
    throw new UsageError(`${parameters.argument} parameter options names several schemas in search_path; name the lock table's schema alone.`);
  }
  return checkIdentifier(name.toLowerCase(), `The search_path of ${parameters.argument}'s options parameter`, MAX_SCHEMA_LENGTH);
}
