import { DataSource } from 'typeorm';
import { LockEntity } from '../lib';
import { createLockApp, dropLockTable, LockApp, useHeldLock } from './support/lock-app';
import { runCommand } from './support/processes';
import { closedPort, TcpProxy } from './support/tcp-proxy';
import { describeOnDatabase, MYSQL_URL, POSTGRES_URL, testDatabase, uniqueName } from './support/test-databases';

const PASSWORD = 'S3cret-Pa55';

/** Every character as a %-escape: what a URL may write so, the command must read back. */
const escapedEntirely = (text: string) => [...Buffer.from(text)].map((byte) => `%${byte.toString(16).padStart(2, '0')}`).join('');

/** A test server's URL with its parts changed, written as a user would write it. */
function serverUrl(base: string, parts: { host?: string; port?: number | string; user?: string; database?: string; query?: string }): string {
  const url = new URL(base);
  const userInformation = parts.user ?? `${url.username}${url.password ? `:${url.password}` : ''}`;
  const port = parts.port ?? url.port;
  const query = parts.query ? `?${parts.query}` : '';
  return `${url.protocol}//${userInformation}@${parts.host ?? url.hostname}${port === '' ? '' : `:${port}`}/${parts.database ?? url.pathname.slice(1)}${query}`;
}

const databaseName = (url: string) => decodeURIComponent(new URL(url).pathname.slice(1));
const userName = (url: string) => decodeURIComponent(new URL(url).username);

/** The names `list --json` shows. */
async function listedNames(args: string[], env?: Record<string, string>): Promise<string[]> {
  const finished = await runCommand(['list', '--json', ...args], { env });
  expect(finished).toMatchObject({ code: 0, stderr: '' });
  return JSON.parse(finished.stdout).map((lock: LockEntity) => lock.name);
}

describe('nestjs-lockmgr, before it connects, refuses a URL it would not follow to the letter', () => {
  // Every URL names a server that is down: had the command connected, it would have exited 1.
  it.concurrent.each([
    ['postgres', 'bogus=1', [], '--url has the unknown parameter "bogus"; the parameters it takes are host, port, sslmode, sslrootcert, sslcert, sslkey and options.'],
    ['postgres', `password=${PASSWORD}`, [], '--url has the unknown parameter "password"'],
    ['postgres', 'socketPath=/run/mysqld/mysqld.sock', [], '--url has the unknown parameter "socketPath"'],
    [
      'mysql',
      'host=/var/run/postgresql',
      [],
      '--url has the unknown parameter "host"; the parameters it takes are socketPath, ssl, sslmode, ssl-mode, sslca, ssl-ca, sslcert, ssl-cert, sslkey and ssl-key.',
    ],
    ['postgres', 'sslmode=prefer', [], '--url parameter sslmode must be disable, require, verify-ca or verify-full, got "prefer", which tries TLS, then plaintext'],
    ['postgres', 'sslmode=allow', [], '--url parameter sslmode must be disable, require, verify-ca or verify-full, got "allow", which tries plaintext, then TLS'],
    ['postgres', 'sslmode=verify_full', [], '--url parameter sslmode must be disable, require, verify-ca or verify-full, got "verify_full".'],
    ['mysql', 'ssl-mode=PREFERRED', [], '--url parameter ssl-mode must be DISABLED, REQUIRED, VERIFY_CA or VERIFY_IDENTITY, got "PREFERRED", which tries TLS'],
    ['mysql', 'ssl=yes', [], '--url parameter ssl must be true or false, got "yes".'],
    ['mysql', 'ssl=false&sslmode=REQUIRED', [], '--url parameters ssl and sslmode contradict each other'],
    ['mysql', 'sslmode=REQUIRED&ssl-mode=REQUIRED', [], '--url gives the parameter sslmode twice (as sslmode and ssl-mode); give it once.'],
    ['postgres', 'sslmode=require&sslmode=require', [], '--url gives the parameter sslmode twice; give it once.'],
    ['postgres', 'sslrootcert=root.crt', [], '--url parameter sslrootcert has no use without TLS: add an sslmode that asks for TLS.'],
    ['mysql', 'ssl=false&ssl-ca=ca.pem', [], '--url parameter ssl-ca has no use without TLS'],
    ['postgres', 'sslmode=require&sslrootcert=/nonexistent/root.crt', [], '--url parameter sslrootcert: cannot read "/nonexistent/root.crt": ENOENT'],
    ['postgres', `sslmode=require&sslcert=${encodeURIComponent(__filename)}`, [], '--url parameter sslcert needs sslkey with it'],
    ['mysql', 'sslmode=REQUIRED&ssl-key=', [], '--url parameter ssl-key names no file.'],
    ['postgres', 'sslmode=%zz', [], '--url has a malformed %-escape in the parameter sslmode.'],
    ['postgres', 'options=-c%20statement_timeout%3D0', [], `--url parameter options may only set the lock table's schema, as "-c search_path=SCHEMA"`],
    ['postgres', 'options=-c%20search_path%3Dlocks,public', [], '--url parameter options names several schemas in search_path'],
    ['postgres', 'options=-c%20search_path%3Dlocks', ['--schema', 'locks'], "--schema and the search_path of --url's options parameter both name the schema; give it once."],
    ['postgres', 'host=/var/run/postgresql', [], '--url names the host twice, before the path and as its host parameter; give it once.'],
    ['postgres', 'port=5432', [], '--url gives the port twice, after the host and as its port parameter; give it once.'],
    ['postgres', '', ['--schema', 'locks; DROP TABLE x'], '--schema must be a plain SQL identifier'],
    ['mysql', '', ['--schema', 'locks'], "--schema is for PostgreSQL; on MySQL the lock table's database is the one the URL names."],
  ])('%s://…?%s %j: exit code 64 and "%s"', async (scheme, query, args, message) => {
    const url = `${scheme}://app:${PASSWORD}@127.0.0.1:${await closedPort()}/app${query ? `?${query}` : ''}`;
    const finished = await runCommand(['list', '--url', url, ...args]);
    expect(finished).toMatchObject({ code: 64, stdout: '' });
    expect(finished.stderr).toContain(`nestjs-lockmgr list: ${message}`);
    expect(finished.stderr).not.toContain(PASSWORD);
  });

  it.concurrent.each([
    [`postgres://app:${PASSWORD}@/app`, [], '--url is not a valid postgres:// URL.'],
    ['postgres:///app', [], '--url names no host: write postgres://USER:PASSWORD@HOST:PORT/DATABASE, or postgres:///DATABASE?host=/SOCKET/DIRECTORY for a Unix socket.'],
    ['mysql:///app', [], '--url names no host: write mysql://USER:PASSWORD@HOST:PORT/DATABASE, or add ?socketPath=/PATH/TO/SOCKET for a Unix socket.'],
    ['mysql:///app?socketPath=', [], '--url parameter socketPath names no socket.'],
    ['postgres:///app?host=/a,/b', [], '--url names several hosts; give one.'],
    ['postgres:///app?host=/tmp&port=http', [], '--url parameter port must be a port number (1 to 65535), got "http".'],
    [`postgres://app:${PASSWORD}@db.internal/app#main`, [], '--url has a "#" fragment'],
    [`postgres://app:${PASSWORD}@db.internal/app/locks`, [], '--url has more than a database name in its path'],
    ['sqlite:app.sqlite', ['--schema', 'locks'], '--schema is for PostgreSQL; an SQLite file has no schemas.'],
  ])('%s %j: exit code 64 and "%s"', async (url, args, message) => {
    const finished = await runCommand(['list', '--url', url, ...args]);
    expect(finished).toMatchObject({ code: 64, stdout: '' });
    expect(finished.stderr).toContain(`nestjs-lockmgr list: ${message}`);
    expect(finished.stderr).not.toContain(PASSWORD);
  });
});

/** The command through a relay listening on `::1`, the IPv6 loopback, to the server of `url`. */
async function throughIpv6(url: string, run: (ipv6Url: string) => Promise<string[]>): Promise<string[]> {
  const target = new URL(url);
  const proxy = await TcpProxy.start(target.hostname, Number(target.port || (target.protocol === 'mysql:' ? 3306 : 5432)), '::1');
  try {
    return await run(serverUrl(url, { host: '[::1]', port: proxy.port }));
  } finally {
    await proxy.close();
  }
}

describeOnDatabase(testDatabase('mysql'), 'nestjs-lockmgr given a mysql:// URL', () => {
  const isolation = uniqueName('command_urls');
  const app = useHeldLock(testDatabase('mysql'), isolation);
  const list = (url: string) => listedNames(['--table', isolation, '--url', url]);

  it('connects to an IPv6 address in brackets', async () => {
    expect(await throughIpv6(MYSQL_URL, list)).toEqual(['held']);
  });

  it("connects through socketPath, the server's Unix socket, whatever host and port the URL names", async () => {
    const [{ socket }] = await app().dataSource.query('SELECT @@socket AS socket');
    expect(await list(serverUrl(MYSQL_URL, { port: await closedPort(), query: `socketPath=${encodeURIComponent(socket)}` }))).toEqual(['held']);
    const hostless = await runCommand(['list', '--table', isolation, '--url', 'mysql:///test?socketPath=/nonexistent/mysqld.sock']);
    expect(hostless).toMatchObject({ code: 1, stdout: '' });
    expect(hostless.stderr).toBe(
      'nestjs-lockmgr list: Could not connect to the MySQL database "test" at /nonexistent/mysqld.sock: connect ENOENT /nonexistent/mysqld.sock\n',
    );
  });

  it('decodes a user name and a database name written as %-escapes', async () => {
    const url = serverUrl(MYSQL_URL, { user: escapedEntirely(userName(MYSQL_URL)), database: escapedEntirely(databaseName(MYSQL_URL)) });
    expect(await list(url)).toEqual(['held']);
  });

  it('decodes a password written with %-escapes', async () => {
    const user = uniqueName('lockmgr_user');
    const password = 'p@ss/w:rd #1?&%';
    const dataSource = app().dataSource;
    await dataSource.query(`CREATE USER '${user}'@'%' IDENTIFIED BY '${password}'`);
    try {
      await dataSource.query(`GRANT ALL ON \`${databaseName(MYSQL_URL)}\`.* TO '${user}'@'%'`);
      expect(await list(serverUrl(MYSQL_URL, { user: `${user}:${encodeURIComponent(password)}` }))).toEqual(['held']);
    } finally {
      await dataSource.query(`DROP USER '${user}'@'%'`);
    }
  });
});

describeOnDatabase(testDatabase('postgres'), 'nestjs-lockmgr given a postgres:// URL', () => {
  const isolation = uniqueName('command_urls');
  const app = useHeldLock(testDatabase('postgres'), isolation);
  const list = (url: string, env?: Record<string, string>) => listedNames(['--table', isolation, '--url', url], env);

  it('connects to an IPv6 address in brackets', async () => {
    expect(await throughIpv6(POSTGRES_URL, list)).toEqual(['held']);
  });

  it("connects through the server's Unix socket, named by its directory as libpq does", async () => {
    const [{ directories }] = await app().dataSource.query('SELECT setting AS directories FROM pg_settings WHERE name = $1', ['unix_socket_directories']);
    const directory: string = directories.split(',')[0].trim();
    const port = new URL(POSTGRES_URL).port || '5432';
    // As the host parameter, the user then given as PGUSER (libpq's variable, which node-postgres reads too).
    const asParameter = `postgres:///${databaseName(POSTGRES_URL)}?host=${encodeURIComponent(directory)}&port=${port}`;
    expect(await list(asParameter, { PGUSER: userName(POSTGRES_URL) })).toEqual(['held']);
    // As the host, %-escaped.
    expect(await list(serverUrl(POSTGRES_URL, { host: encodeURIComponent(directory), port }))).toEqual(['held']);
  });

  it('decodes a user name and a database name written as %-escapes', async () => {
    const url = serverUrl(POSTGRES_URL, { user: escapedEntirely(userName(POSTGRES_URL)), database: escapedEntirely(databaseName(POSTGRES_URL)) });
    expect(await list(url)).toEqual(['held']);
  });
});

describeOnDatabase(testDatabase('postgres'), 'nestjs-lockmgr given a schema', (database) => {
  // Two lock tables of one name: in public, the first schema of the default search_path, and in a schema of the test's own.
  const isolation = uniqueName('command_schema');
  let inPublic: LockApp;
  let inSchema: LockApp;
  const command = (args: string[], input?: string) => runCommand([...args, '--url', POSTGRES_URL, '--table', isolation], { input });
  const names = async (app: LockApp) => (await app.locks.listLocks()).map((lock) => lock.name);

  beforeAll(async () => {
    inPublic = await createLockApp(database, isolation);
    await inPublic.dataSource.query(`CREATE SCHEMA ${isolation}`);
    inSchema = await createLockApp({ ...database, dataSourceOptions: () => ({ type: 'postgres', url: POSTGRES_URL, schema: isolation }) }, isolation);
  });
  beforeEach(async () => {
    for (const name of ['shared', 'public-only']) await inPublic.locks.getLock(name, { expires: 600 });
    for (const name of ['shared', 'schema-only']) await inSchema.locks.getLock(name, { expires: 600 });
  });
  afterEach(async () => {
    for (const app of [inPublic, inSchema]) for (const lock of await app.locks.listLocks()) await app.locks.unlock(lock.name);
  });
  afterAll(async () => {
    await inSchema?.close();
    const dataSource = new DataSource({ type: 'postgres', url: POSTGRES_URL });
    await dataSource.initialize();
    await dataSource.query(`DROP SCHEMA IF EXISTS ${isolation} CASCADE`);
    await dataSource.destroy();
    await inPublic?.close();
    await dropLockTable(database, isolation);
  });

  it('lists the lock table of the schema --schema names, not the one search_path finds', async () => {
    expect(await listedNames(['--url', POSTGRES_URL, '--table', isolation])).toEqual(['public-only', 'shared']);
    expect(await listedNames(['--url', POSTGRES_URL, '--table', isolation, '--schema', isolation])).toEqual(['schema-only', 'shared']);
  });

  it('clears the locks of that schema only', async () => {
    const finished = await command(['clear', 'shared', 'public-only', '--schema', isolation]);
    expect(finished).toMatchObject({ code: 0, stdout: 'released    shared\nnot locked  public-only\n', stderr: '' });
    expect(await names(inSchema)).toEqual(['schema-only']);
    expect(await names(inPublic)).toEqual(['public-only', 'shared']);
  });

  it('resets the lock table of that schema only, and names the schema when it asks', async () => {
    const finished = await command(['reset', '--schema', isolation], `${isolation}\n`);
    expect(finished).toMatchObject({ code: 0, stdout: 'Deleted 2 locks.\n' });
    expect(finished.stderr).toContain(`This deletes 2 locks in the table "${isolation}" of the PostgreSQL database`);
    expect(finished.stderr).toContain(`, schema "${isolation}"; their holders lose them.`);
    expect(await names(inSchema)).toEqual([]);
    expect(await names(inPublic)).toEqual(['public-only', 'shared']);
  });

  it('finds the lock table an app made without a schema when --schema names the schema search_path finds', async () => {
    expect(await listedNames(['--url', POSTGRES_URL, '--table', isolation, '--schema', 'public'])).toEqual(['public-only', 'shared']);
  });

  it("takes the schema from the URL's options=-c search_path=SCHEMA, libpq's way to set it", async () => {
    const url = serverUrl(POSTGRES_URL, { query: `options=${encodeURIComponent(`-c search_path=${isolation}`)}` });
    expect(await listedNames(['--url', url, '--table', isolation])).toEqual(['schema-only', 'shared']);
  });

  it('says so when the lock table is not in the schema named', async () => {
    const finished = await command(['list', '--schema', 'public_not_here']);
    expect(finished).toMatchObject({ code: 1, stdout: '' });
    expect(finished.stderr).toContain(`The lock table "public_not_here"."${isolation}" does not exist.`);
    expect(finished.stderr).toContain('if it is in another schema, name that with --schema.');
  });
});
