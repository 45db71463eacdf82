import { createLockApp, useHeldLock } from './support/lock-app';
import { runCommand } from './support/processes';
import { CERTIFICATE_USER, startTlsPostgres, TlsPostgres } from './support/tls-postgres';
import { describeOnDatabase, MYSQL_URL, POSTGRES_URL, testDatabase, TestDatabase, uniqueName } from './support/test-databases';

/** The URL with the parameters added. */
const withQuery = (url: string, query: string) => `${url}${url.includes('?') ? '&' : '?'}${query}`;

/** `list --json` on `table` of `url`. */
const list = (url: string, table: string) => runCommand(['list', '--json', '--table', table, '--url', url]);

describeOnDatabase(testDatabase('mysql'), 'nestjs-lockmgr given a URL that asks for TLS, of a server without TLS,', () => {
  const isolation = uniqueName('command_tls');
  useHeldLock(testDatabase('mysql'), isolation);

  it.each(['ssl=true', 'sslmode=REQUIRED', 'ssl=true&sslmode=REQUIRED', 'ssl-mode=verify_ca', 'ssl-mode=VERIFY_IDENTITY'])(
    'fails with %s, and lists nothing',
    async (query) => {
      const finished = await list(withQuery(MYSQL_URL, query), isolation);
      expect(finished).toMatchObject({ code: 1, stdout: '' });
      expect(finished.stderr).toMatch(/^nestjs-lockmgr list: Could not connect to the MySQL database "\w+" at \S+: Server does not support secure connection\n$/);
    },
  );

  it.each(['ssl=false', 'sslmode=DISABLED'])('connects in plaintext when %s says so', async (query) => {
    const finished = await list(withQuery(MYSQL_URL, query), isolation);
    expect(finished).toMatchObject({ code: 0, stderr: '' });
    expect(JSON.parse(finished.stdout)).toMatchObject([{ name: 'held' }]);
  });
});

describeOnDatabase(testDatabase('postgres'), 'nestjs-lockmgr given a URL that asks for TLS, of a server without TLS,', () => {
  const isolation = uniqueName('command_tls');
  useHeldLock(testDatabase('postgres'), isolation);

  it.each(['sslmode=require', 'sslmode=verify-ca', 'sslmode=verify-full'])('fails with %s, and lists nothing', async (query) => {
    const finished = await list(withQuery(POSTGRES_URL, query), isolation);
    expect(finished).toMatchObject({ code: 1, stdout: '' });
    expect(finished.stderr).toMatch(
      /^nestjs-lockmgr list: Could not connect to the PostgreSQL database "\w+" at \S+: The server does not support SSL connections\n$/,
    );
  });
});

describe('nestjs-lockmgr on a PostgreSQL server that takes TLS connections only', () => {
  const isolation = uniqueName('command_tls');
  let server: TlsPostgres;
  beforeAll(async () => {
    server = await startTlsPostgres();
    const database: TestDatabase = {
      ...testDatabase('postgres'),
      dataSourceOptions: () => ({ type: 'postgres', host: '127.0.0.1', port: server.port, username: 'postgres', ssl: { rejectUnauthorized: false } }),
    };
    const app = await createLockApp(database, isolation);
    await app.locks.getLock('held', { expires: 600 });
    await app.close();
  });
  afterAll(() => server?.stop());

  /** The server's URL; `query` names its files by their keys in `TlsFiles`, as `sslrootcert={authority}`. */
  const url = (host: string, query: string, user = 'postgres') =>
    `postgres://${user}@${host}:${server.port}/postgres?${query.replace(/\{(\w+)\}/g, (_, key: keyof TlsPostgres['files']) =>
      encodeURIComponent(server.files[key]),
    )}`;

  it.each([
    ['sslmode=require', '127.0.0.1'],
    // libpq's rule: given a certificate authority, require checks the chain (not the host name).
    ['sslmode=require&sslrootcert={authority}', '127.0.0.1'],
    ['sslmode=verify-ca&sslrootcert={authority}', '127.0.0.1'],
    ['sslmode=VERIFY-FULL&sslrootcert={authority}', 'localhost'],
  ])('lists the locks over TLS with %s at %s', async (query, host) => {
    const finished = await list(url(host, query), isolation);
    expect(finished).toMatchObject({ code: 0, stderr: '' });
    expect(JSON.parse(finished.stdout)).toMatchObject([{ name: 'held' }]);
  });

  it.each([
    ['', '127.0.0.1', 'no encryption'],
    ['sslmode=disable', '127.0.0.1', 'no encryption'],
    ['sslmode=require&sslrootcert={otherAuthority}', '127.0.0.1', 'certificate'],
    ['sslmode=verify-ca&sslrootcert={otherAuthority}', '127.0.0.1', 'certificate'],
    // Without sslrootcert, the authorities Node.js trusts, which did not sign the server's certificate.
    ['sslmode=verify-ca', 'localhost', 'certificate'],
    // The server's certificate names localhost only.
    ['sslmode=verify-full&sslrootcert={authority}', '127.0.0.1', "Hostname/IP does not match certificate's altnames"],
  ])('fails with %j at %s, and lists nothing', async (query, host, reason) => {
    const finished = await list(url(host, query), isolation);
    expect(finished).toMatchObject({ code: 1, stdout: '' });
    expect(finished.stderr).toMatch(new RegExp(`^nestjs-lockmgr list: Could not connect to the PostgreSQL database "postgres" at ${host}:${server.port}: .*${reason}`));
  });

  it('shows the client certificate that sslcert and sslkey name to a server that asks for one', async () => {
    const verified = 'sslmode=verify-full&sslrootcert={authority}';
    const withCertificate = await list(url('localhost', `${verified}&sslcert={clientCertificate}&sslkey={clientKey}`, CERTIFICATE_USER), isolation);
    expect(withCertificate).toMatchObject({ code: 0, stderr: '' });
    expect(JSON.parse(withCertificate.stdout)).toMatchObject([{ name: 'held' }]);

    const without = await list(url('localhost', verified, CERTIFICATE_USER), isolation);
    expect(without).toMatchObject({ code: 1, stdout: '' });
    expect(without.stderr).toContain('certificate');
  });
});
