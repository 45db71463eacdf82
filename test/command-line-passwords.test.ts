import { Finished, runCommand } from './support/processes';
import { closedPort } from './support/tcp-proxy';
import { describeOnDatabase, MYSQL_URL, POSTGRES_URL, testDatabase } from './support/test-databases';

const PASSWORD = 'S3cret-Pa55';

/** The command given the database `url`, once through --url and once through DATABASE_URL. */
async function bothWays(url: string): Promise<Array<{ argument: string; finished: Finished }>> {
  return [
    { argument: '--url', finished: await runCommand(['list', '--url', url]) },
    { argument: 'DATABASE_URL', finished: await runCommand(['list'], { env: { DATABASE_URL: url } }) },
  ];
}

function expectNoPassword(finished: Finished, ...passwords: string[]): void {
  for (const password of passwords) {
    expect(finished.stderr).not.toContain(password);
    expect(finished.stdout).not.toContain(password);
  }
}

/** The URL with its server's user and `password` in place of the test user's. */
function withPassword(url: string, password: string): string {
  const parsed = new URL(url);
  parsed.password = password;
  return parsed.href;
}

describe('nestjs-lockmgr never shows the password of the database it is given', () => {
  it.concurrent.each([
    [`postgres//app:${PASSWORD}@db.internal/app`, 'lacks the ":" of "postgres://"'],
    [`postgresql//app:${PASSWORD}@db.internal/app`, 'lacks the ":" of "postgresql://"'],
    [`postgres:/app:${PASSWORD}@db.internal/app`, 'lacks the "//" of "postgres://"'],
    [`postgres:app:${PASSWORD}@db.internal/app`, 'lacks the "//" of "postgres://"'],
    [`mysql:app:${PASSWORD}@db.internal/app`, 'lacks the "//" of "mysql://"'],
    ['mysql:', 'lacks the "//" of "mysql://"'],
    [`MariaDB:/app:${PASSWORD}@db.internal/app`, 'lacks the "//" of "mariadb://"'],
    [`://app:${PASSWORD}@db.internal/app`, 'has no scheme'],
    [`app:${PASSWORD}@db.internal/app`, 'has no scheme'],
    [`db.internal/app:${PASSWORD}@x`, 'has no scheme'],
    [`postgress://app:${PASSWORD}@db.internal/app`, 'has the unsupported scheme "postgress:"'],
  ])('rejects %j with exit code 64 and a message that says what is wrong, without the password', async (url, problem) => {
    for (const { argument, finished } of await bothWays(url)) {
      expectNoPassword(finished, PASSWORD);
      expect(finished).toMatchObject({ code: 64, stdout: '' });
      expect(finished.stderr).toContain(`nestjs-lockmgr list: ${argument} ${problem}`);
    }
  });

  it('reads a URL with surrounding blanks as the URL', async () => {
    const port = await closedPort();
    for (const { finished } of await bothWays(`  postgres://postgres:${PASSWORD}@127.0.0.1:${port}/test\n`)) {
      expect(finished).toMatchObject({ code: 1, stdout: '' });
      expect(finished.stderr).toContain(`Could not connect to the PostgreSQL database "test" at 127.0.0.1:${port}: connect ECONNREFUSED`);
      expectNoPassword(finished, PASSWORD);
    }
  });

  it('keeps the password out of an SQLite path that holds one', async () => {
    for (const { finished } of await bothWays(`sqlite:app:${PASSWORD}@db.internal/app`)) {
      expect(finished).toMatchObject({ code: 1, stdout: '' });
      expect(finished.stderr).toMatch(/^nestjs-lockmgr list: The SQLite file \S*app:\*\*\*@db\.internal\/app does not exist\.\n$/);
      expectNoPassword(finished, PASSWORD);
    }
  });

  it('keeps a password out of the arguments it rejects', async () => {
    const finished = await runCommand(['list', `postgres://app:${PASSWORD}@db.internal/app`], { env: { DATABASE_URL: 'unused.sqlite' } });
    expect(finished).toMatchObject({ code: 64, stdout: '' });
    expect(finished.stderr).toContain("nestjs-lockmgr list: Unexpected argument 'postgres://app:***@db.internal/app'");
    expectNoPassword(finished, PASSWORD);
  });
});

describeOnDatabase(testDatabase('postgres'), 'nestjs-lockmgr keeps the password out of the errors of the server', () => {
  it('when the server is down', async () => {
    const port = await closedPort();
    for (const { finished } of await bothWays(`postgres://postgres:${PASSWORD}@127.0.0.1:${port}/test`)) {
      expect(finished).toMatchObject({ code: 1, stdout: '' });
      expect(finished.stderr).toContain(`Could not connect to the PostgreSQL database "test" at 127.0.0.1:${port}: connect ECONNREFUSED`);
      expectNoPassword(finished, PASSWORD);
    }
  });

  it('when the server quotes it back, as written and percent-decoded', async () => {
    // A database named like the password: the server's "does not exist" quotes the name.
    const encoded = 'p%40ss%2Fw0rd';
    const url = new URL(withPassword(POSTGRES_URL, encoded));
    url.pathname = `/${encoded}`;
    for (const { finished } of await bothWays(url.href)) {
      expect(finished).toMatchObject({ code: 1, stdout: '' });
      expect(finished.stderr).toContain('Could not connect to the PostgreSQL database "***" at');
      expect(finished.stderr).toContain('database "***" does not exist');
      expectNoPassword(finished, encoded, 'p@ss/w0rd');
    }
  });
});

describeOnDatabase(testDatabase('mysql'), 'nestjs-lockmgr keeps the password out of the errors of the server', () => {
  it('when the server refuses it', async () => {
    for (const { finished } of await bothWays(withPassword(MYSQL_URL, PASSWORD))) {
      expect(finished).toMatchObject({ code: 1, stdout: '' });
      expect(finished.stderr).toMatch(/^nestjs-lockmgr list: Could not connect to the MySQL database "test" at .+: Access denied for user/);
      expectNoPassword(finished, PASSWORD);
    }
  });
});
