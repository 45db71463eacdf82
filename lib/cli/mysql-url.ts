import type { DataSourceOptions } from 'typeorm';
import { UsageError } from './command';
import { CONNECT_TIMEOUT_MS, hostAndPort, ServerConnection, ServerUrl, serverUrlForm } from './server-url';
import { TlsMode, tlsOptions } from './tls-options';
import type { ParameterSpellings } from './url-parameters';

/**
 * The parameters a `mysql://` or `mariadb://` URL takes here: mysql2's `socketPath`, and TLS as the
 * `mysql` client names it (`--ssl`, `--ssl-mode`, `--ssl-ca`, …), with or without the dash.
 */
export const MYSQL_URL_PARAMETERS: ParameterSpellings = {
  socketPath: 'socketPath',
  ssl: 'ssl',
  sslmode: 'sslmode',
  'ssl-mode': 'sslmode',
  sslca: 'sslca',
  'ssl-ca': 'sslca',
  sslcert: 'sslcert',
  'ssl-cert': 'sslcert',
  sslkey: 'sslkey',
  'ssl-key': 'sslkey',
};

const SSL_MODES: Record<string, TlsMode> = { DISABLED: 'disable', REQUIRED: 'require', VERIFY_CA: 'verify-ca', VERIFY_IDENTITY: 'verify-full' };

const SSL_SWITCH: Record<string, TlsMode> = { true: 'require', false: 'disable' };

/** The mode that falls back to plaintext: mysql2 cannot, and a URL must not silently mean less than it says. */
const FALLBACK_SSL_MODES = { PREFERRED: 'tries TLS, then plaintext: mysql2 does one or the other' };

/** A `mysql://` or `mariadb://` URL; with `socketPath`, the host may be left out (`mysql:///app?socketPath=…`). */
export function mysqlConnection(url: ServerUrl, scheme: string, type: 'mysql' | 'mariadb'): ServerConnection {
  const { parameters } = url;
  const { argument } = parameters;
  const socketPath = parameters.value('socketPath');
  if (socketPath === '') throw new UsageError(`${argument} parameter socketPath names no socket.`);
  if (url.host === '' && socketPath === undefined) {
    throw new UsageError(`${argument} names no host: write ${serverUrlForm(scheme)}, or add ?socketPath=/PATH/TO/SOCKET for a Unix socket.`);
  }
  const options: Extract<DataSourceOptions, { type: 'mysql' | 'mariadb' }> = {
    type,
    host: url.host || undefined,
    port: url.port,
    socketPath,
    username: url.username,
    password: url.password,
    database: url.database,
    ssl: tlsOptions(sslMode(url), parameters, { ca: 'sslca', cert: 'sslcert', key: 'sslkey' }),
    connectTimeout: CONNECT_TIMEOUT_MS,
  };
  return { options, address: socketPath ?? hostAndPort(url.host, url.port) };
}

/** `ssl=true` asks for TLS as `sslmode=REQUIRED` does; given both, they must agree. */
function sslMode({ parameters }: ServerUrl): TlsMode | undefined {
  const mode = parameters.choice('sslmode', SSL_MODES, FALLBACK_SSL_MODES);
  const switched = parameters.choice('ssl', SSL_SWITCH);
  if (mode !== undefined && switched !== undefined && (mode === 'disable') !== (switched === 'disable')) {
    throw new UsageError(
      `${parameters.argument} parameters ssl and ${parameters.spelling('sslmode')} contradict each other: one asks for TLS, the other turns it off.`,
    );
  }
  return mode ?? switched;
}
