import type { DataSourceOptions } from 'typeorm';
import { UsageError } from './command';
import { ParameterSpellings, UrlParameters } from './url-parameters';

/** A server that does not answer must not keep the operator waiting for long. */
export const CONNECT_TIMEOUT_MS = 10_000;

/** A `postgres://` or `mysql://` URL, read and percent-decoded; its parts are undefined when it leaves them out. */
export interface ServerUrl {
  /** Without the brackets of an IPv6 address (`[::1]`); empty when the URL names none (`postgres:///app`). */
  host: string;
  port?: number;
  username?: string;
  password?: string;
  database?: string;
  parameters: UrlParameters;
}

/** How the command opens a server: TypeORM's options, and for people, where the server is and the lock table's schema. */
export interface ServerConnection {
  options: DataSourceOptions;
  /** `db.internal:5432`, `[::1]:3306`, or a Unix socket's path. */
  address: string;
  schema?: string;
}

/**
 * Reads a server URL as WHATWG parses it (which reads a `[::1]` host and finds the last `@` of the user
 * information), with the parameters `spellings` allows. No message echoes a part of the URL: the
 * password may be anywhere, if the URL is mistyped.
 */
export function readServerUrl(text: string, scheme: string, argument: string, spellings: ParameterSpellings): ServerUrl {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new UsageError(`${argument} is not a valid ${scheme}:// URL.`);
  }
  if (url.hash !== '') {
    throw new UsageError(`${argument} has a "#" fragment, which a database URL has no use for (write a "#" in a password as %23).`);
  }
  const path = url.pathname.replace(/^\//, '');
  if (path.includes('/')) throw new UsageError(`${argument} has more than a database name in its path (write a "/" in a name as %2F).`);
  const part = (text: string, what: string) => {
    try {
      return decodeURIComponent(text) || undefined;
    } catch {
      throw new UsageError(`${argument} has a malformed %-escape in its ${what}.`);
    }
  };
  return {
    host: part(url.hostname.replace(/^\[(.*)\]$/, '$1'), 'host') ?? '',
    port: url.port === '' ? undefined : Number(url.port),
    username: part(url.username, 'user name'),
    password: part(url.password, 'password'),
    database: part(path, 'database name'),
    parameters: UrlParameters.read(url.search, argument, spellings),
  };
}

/** How messages write the form of a server URL. */
export function serverUrlForm(scheme: string): string {
  return `${scheme}://USER:PASSWORD@HOST:PORT/DATABASE`;
}

/** How messages write a server's host and port. */
export function hostAndPort(host: string, port: number | undefined): string {
  return `${host.includes(':') ? `[${host}]` : host}${port === undefined ? '' : `:${port}`}`;
}
