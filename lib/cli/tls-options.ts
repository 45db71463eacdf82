import type { ConnectionOptions } from 'node:tls';
import { UsageError } from './command';
import type { UrlParameters } from './url-parameters';

/** What a URL asks of TLS, in libpq's words; MySQL's ssl-mode values map onto them. */
export type TlsMode = 'disable' | 'require' | 'verify-ca' | 'verify-full';

/**
 * The `ssl` option of both drivers, in one object: node-postgres hands it whole to `tls.connect`
 * (which ignores `verifyIdentity`); mysql2 reads the certificates, `rejectUnauthorized`, and its own
 * `verifyIdentity` for the host name check (it ignores `checkServerIdentity`).
 */
export type TlsOptions = Pick<ConnectionOptions, 'ca' | 'cert' | 'key' | 'rejectUnauthorized' | 'checkServerIdentity'> & {
  verifyIdentity: boolean;
};

/** The names of the URL parameters that name the certificate files. */
export interface TlsFileParameters {
  /** The certificate authority that signed the server's certificate. */
  ca: string;
  /** The client's certificate, and its private key. */
  cert: string;
  key: string;
}

/**
 * The drivers' TLS settings for `mode`: undefined when the URL says nothing (the driver's default), false
 * for `disable`, and otherwise TLS that the connection fails without. `require` encrypts without
 * verifying the server, unless a certificate authority is given: then, as with libpq, its chain is
 * verified (not its host name). `verify-ca` verifies the chain, `verify-full` the host name too;
 * without a certificate authority in the URL, they trust the ones Node.js trusts.
 */
export function tlsOptions(
  mode: TlsMode | undefined,
  parameters: UrlParameters,
  files: TlsFileParameters,
): TlsOptions | false | undefined {
  const given = Object.values(files).find((name) => parameters.value(name) !== undefined);
  if (mode === undefined || mode === 'disable') {
    if (given !== undefined) {
      throw new UsageError(
        `${parameters.argument} parameter ${parameters.spelling(given)} has no use without TLS: add an sslmode that asks for TLS.`,
      );
    }
    return mode === undefined ? undefined : false;
  }
  const [cert, key] = [parameters.file(files.cert), parameters.file(files.key)];
  if ((cert === undefined) !== (key === undefined)) {
    const [present, missing] = cert === undefined ? [files.key, files.cert] : [files.cert, files.key];
    throw new UsageError(`${parameters.argument} parameter ${parameters.spelling(present)} needs ${missing} with it: the client's certificate and its key go together.`);
  }
  const ca = parameters.file(files.ca);
  const verifyChain = mode !== 'require' || ca !== undefined;
  const verifyIdentity = mode === 'verify-full';
  return {
    ...(ca && { ca }),
    ...(cert && key && { cert, key }),
    rejectUnauthorized: verifyChain,
    verifyIdentity,
    ...(!verifyIdentity && { checkServerIdentity: () => undefined }),
  };
}
