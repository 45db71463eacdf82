import { ChildProcess, execFileSync, spawn } from 'node:child_process';
import { chmodSync, chownSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client } from 'pg';
import { postgresPrograms } from './postgres-server';
import { unprivilegedUser } from './unprivileged-user';
import { closedPort } from './tcp-proxy';

/** The user whose connections must show a client certificate, signed by the server's certificate authority. */
export const CERTIFICATE_USER = 'lockmgr_cert';

/** The files of the server's certificates, as a client names them in its URL. */
export interface TlsFiles {
  /** The certificate authority that signed the server's certificate (for `localhost` only) and the client's. */
  authority: string;
  /** A certificate authority that signed nothing of this server's. */
  otherAuthority: string;
  /** The client certificate of `CERTIFICATE_USER`, and its key. */
  clientCertificate: string;
  clientKey: string;
}

/**
 * A PostgreSQL server of the test file's own, in a temporary folder, that takes TLS connections only:
 * its pg_hba.conf has `hostssl` lines and no `host` line, so a plaintext connection is refused.
 */
export interface TlsPostgres {
  port: number;
  files: TlsFiles;
  stop(): Promise<void>;
}

function openssl(directory: string, args: string[]): void {
  execFileSync('openssl', args, { cwd: directory, stdio: 'pipe' });
}

/** A key and a certificate signed by `authority` (self-signed without one). */
function certificate(directory: string, name: string, subject: string, authority?: string, extensions: string[] = []): void {
  const key = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', `${name}.key`];
  if (!authority) {
    const ca = ['-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign'];
    return openssl(directory, ['req', '-x509', ...key, '-out', `${name}.crt`, '-days', '2', '-subj', subject, ...ca]);
  }
  openssl(directory, ['req', ...key, '-out', `${name}.csr`, '-subj', subject]);
  writeFileSync(join(directory, `${name}.ext`), ['basicConstraints=CA:FALSE', ...extensions].join('\n'));
  openssl(directory, ['x509', '-req', '-in', `${name}.csr`, '-CA', `${authority}.crt`, '-CAkey', `${authority}.key`, '-CAcreateserial']
    .concat(['-out', `${name}.crt`, '-days', '2', '-extfile', `${name}.ext`]));
}

async function started(port: number, child: ChildProcess, output: () => string): Promise<void> {
  const giveUpAt = performance.now() + 30_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`PostgreSQL exited with code ${child.exitCode}:\n${output()}`);
    try {
      return await asPostgres(port, `CREATE ROLE ${CERTIFICATE_USER} SUPERUSER LOGIN`);
    } catch (error) {
      if (performance.now() > giveUpAt) throw new Error(`PostgreSQL did not answer within 30 s (${error}):\n${output()}`);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }
}

/** Runs one statement as the superuser; the server's certificate is not checked. */
async function asPostgres(port: number, statement: string): Promise<void> {
  const client = new Client({ host: '127.0.0.1', port, user: 'postgres', database: 'postgres', ssl: { rejectUnauthorized: false } });
  try {
    await client.connect();
    await client.query(statement);
  } finally {
    await client.end().catch(() => undefined);
  }
}

/** Makes the certificates, a database cluster and its server, and resolves once the server takes connections. */
export async function startTlsPostgres(): Promise<TlsPostgres> {
  const programs = postgresPrograms();
  if (!programs) throw new Error('initdb and postgres (the PostgreSQL server) are not installed.');
  const owner = unprivilegedUser('PostgreSQL');
  const directory = mkdtempSync(join(tmpdir(), 'lockmgr-tls-postgres-'));
  const data = join(directory, 'data');
  certificate(directory, 'authority', '/CN=nestjs-lockmgr test authority');
  certificate(directory, 'other-authority', '/CN=nestjs-lockmgr other test authority');
  certificate(directory, 'server', '/CN=localhost', 'authority', ['subjectAltName=DNS:localhost', 'extendedKeyUsage=serverAuth']);
  certificate(directory, 'client', `/CN=${CERTIFICATE_USER}`, 'authority', ['extendedKeyUsage=clientAuth']);
  // The server reads its key only if no one else can.
  chmodSync(join(directory, 'server.key'), 0o600);
  if (owner) for (const path of [directory, join(directory, 'server.key')]) chownSync(path, owner.uid, owner.gid);
  execFileSync(join(programs, 'initdb'), ['-D', data, '-U', 'postgres', '--auth=trust', '--no-sync', '-E', 'UTF8', '--locale=C'], {
    ...owner,
    stdio: 'pipe',
  });
  writeFileSync(
    join(data, 'pg_hba.conf'),
    ['127.0.0.1/32', '::1/128'].flatMap((address) => [`hostssl all ${CERTIFICATE_USER} ${address} cert`, `hostssl all all ${address} trust`]).join('\n') + '\n',
  );
  const port = await closedPort();
  const settings = {
    listen_addresses: 'localhost',
    port: String(port),
    unix_socket_directories: '',
    ssl: 'on',
    ssl_cert_file: join(directory, 'server.crt'),
    ssl_key_file: join(directory, 'server.key'),
    ssl_ca_file: join(directory, 'authority.crt'),
    fsync: 'off',
    shared_buffers: '16MB',
    max_connections: '20',
  };
  const args = ['-D', data, ...Object.entries(settings).flatMap(([name, value]) => ['-c', `${name}=${value}`])];
  let output = '';
  const child = spawn(join(programs, 'postgres'), args, { ...owner, stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout!.on('data', (chunk) => (output += chunk));
  child.stderr!.on('data', (chunk) => (output += chunk));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const stop = async () => {
    // SIGINT: PostgreSQL's fast shutdown, which ends the sessions still open.
    if (child.exitCode === null) child.kill('SIGINT');
    await exited;
    rmSync(directory, { recursive: true, force: true });
  };
  try {
    await started(port, child, () => output);
  } catch (error) {
    await stop();
    throw error;
  }
  const file = (name: string) => join(directory, name);
  return {
    port,
    files: {
      authority: file('authority.crt'),
      otherAuthority: file('other-authority.crt'),
      clientCertificate: file('client.crt'),
      clientKey: file('client.key'),
    },
    stop,
  };
}
