import { existsSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { LockEntity, LockNotFoundError } from '../lib';
import { createLockApp, dropLockTable, LockApp, sleep, tableRows } from './support/lock-app';
import { runCommand } from './support/processes';
import { closedPort } from './support/tcp-proxy';
import {
  describeEachDatabase,
  describeOnDatabase,
  MYSQL_URL,
  POSTGRES_URL,
  sqliteFile,
  TestDatabase,
  testDatabase,
  uniqueName,
} from './support/test-databases';

const COMMANDS = {
  list: ['--json'],
  clear: [],
  reset: ['--force'],
  set: ['--timeout SECONDS', '--no-timeout', '--no-renew', '--only-renew', '--fail', '--locked-by TEXT', '--pid N'],
};

const COUNTS = (created: number, renewed: number, skipCreate: number, skipRenew: number) =>
  `created: ${created}, renewed: ${renewed}, skipped (free, not created): ${skipCreate}, skipped (locked, not renewed): ${skipRenew}`;

/** Lines of a table, each split into its cells (columns are two spaces or more apart). */
function tableCells(output: string): string[][] {
  return output.trimEnd().split('\n').map((line) => line.split(/ {2,}/));
}

/** Each cell of each row starts where its column's heading starts. */
function expectAligned(output: string): void {
  const [heading, ...rows] = output.trimEnd().split('\n');
  const starts = [...heading.matchAll(/(?:^| {2})(\S)/g)].map((match) => match.index! + match[0].indexOf(match[1]));
  for (const row of rows) {
    const rowStarts = [...row.matchAll(/(?:^| {2})(\S)/g)].map((match) => match.index! + match[0].indexOf(match[1]));
    expect(rowStarts).toEqual(starts);
  }
}

const utcText = (date: Date) => `${date.toISOString().slice(0, 19).replace('T', ' ')} UTC`;

describe('nestjs-lockmgr, before it connects', () => {
  it('shows its help, with every command, the database URLs and the exit codes', async () => {
    const help = await runCommand(['--help']);
    expect(help).toMatchObject({ code: 0, stderr: '' });
    expect(help.stdout).toMatch(/^Usage: nestjs-lockmgr COMMAND \[options\]\n/);
    for (const command of Object.keys(COMMANDS)) expect(help.stdout).toMatch(new RegExp(`^  ${command} +\\S`, 'm'));
    for (const text of ['--url URL', '--table NAME', '--schema NAME', 'postgres://', 'mysql://', 'mariadb://', 'sqlite:PATH', 'DATABASE_URL', 'sslmode', 'socketPath']) {
      expect(help.stdout).toContain(text);
    }
    for (const code of [0, 1, 2, 64, 141]) expect(help.stdout).toMatch(new RegExp(`^  ${code} +\\S`, 'm'));
    expect(await runCommand(['help'])).toEqual(help);
  });

  it.concurrent.each(Object.entries(COMMANDS))('shows the help of %s, with its options, through --help and through help', async (command, options) => {
    const help = await runCommand([command, '--help']);
    expect(help).toMatchObject({ code: 0, stderr: '' });
    expect(help.stdout).toMatch(new RegExp(`^Usage: nestjs-lockmgr ${command} `));
    for (const option of [...options, '--url URL', '--table NAME', '--schema NAME', '-h, --help']) expect(help.stdout).toMatch(new RegExp(`^  ${option} `, 'm'));
    expect(help.stdout).toContain('Exit codes:');
    expect(await runCommand(['help', command])).toEqual(help);
    expect(await runCommand([command, '-h'])).toEqual(help);
  });

  it('shows its help on standard error and exits 64 when given nothing', async () => {
    const finished = await runCommand([]);
    expect(finished).toMatchObject({ code: 64, stdout: '' });
    expect(finished.stderr).toMatch(/^Usage: nestjs-lockmgr COMMAND/);
  });

  it('exits 64 when asked for the help of an unknown command', async () => {
    expect(await runCommand(['help', 'frob'])).toMatchObject({
      code: 64,
      stdout: '',
      stderr: 'nestjs-lockmgr: unknown command "frob"; the commands are list, clear, reset, set.\nRun "nestjs-lockmgr help" for usage.\n',
    });
  });

  // Every case names a server that is down: had the command connected, it would have exited 1.
  it.concurrent.each([
    [['frob'], 'nestjs-lockmgr: unknown command "frob"; the commands are list, clear, reset, set.', 'help'],
    [['--table', 'locks', 'list'], 'nestjs-lockmgr: the command comes first, before "--table"', 'help'],
    [['list', '--bogus'], "nestjs-lockmgr list: Unknown option '--bogus'", 'help list'],
    [['list', 'extra'], "nestjs-lockmgr list: Unexpected argument 'extra'", 'help list'],
    [['list', '--json=yes'], "nestjs-lockmgr list: Option '--json' does not take an argument", 'help list'],
    [['set', 'x', '--timeout', '-5'], "nestjs-lockmgr set: Option '--timeout' argument is ambiguous.", 'help set'],
    [['set', 'x', '--timeout=-5'], 'nestjs-lockmgr set: --timeout must be at least 0 seconds, got -5.', 'help set'],
    [['set', 'x', '--timeout', 'soon'], 'nestjs-lockmgr set: --timeout must be a number, got "soon".', 'help set'],
    [['set', 'x', '--timeout'], "nestjs-lockmgr set: Option '--timeout <value>' argument missing", 'help set'],
    [['set', 'x', '--pid', 'abc'], 'nestjs-lockmgr set: --pid must be an integer, got "abc".', 'help set'],
    [['set', 'x', '--pid', '4294967296'], 'nestjs-lockmgr set: --pid must fit a 32-bit integer, got 4294967296.', 'help set'],
    [['set', 'x', '--timeout', '5', '--no-timeout'], 'nestjs-lockmgr set: --timeout and --no-timeout exclude each other.', 'help set'],
    [['set', 'x', '--no-renew', '--only-renew'], 'nestjs-lockmgr set: --no-renew and --only-renew exclude each other', 'help set'],
    [['set'], 'nestjs-lockmgr set: at least one lock NAME is needed.', 'help set'],
    [['clear'], 'nestjs-lockmgr clear: at least one lock NAME is needed.', 'help clear'],
    [['clear', 'a', ''], 'nestjs-lockmgr clear: Lock name 2 must not be empty.', 'help clear'],
    [['reset', '--yes'], "nestjs-lockmgr reset: Unknown option '--yes'", 'help reset'],
    [['list', '--table', 'locks; DROP TABLE users'], 'nestjs-lockmgr list: --table must be a plain SQL identifier', 'help list'],
  ])('rejects %j with exit code 64 and a message naming the argument, without connecting', async (args, message, helpCommand) => {
    // After the command's name, so that it is not the value of an option that ends the line.
    const url = `postgres://postgres@127.0.0.1:${await closedPort()}/test`;
    const finished = await runCommand([args[0], '--url', url, ...args.slice(1)]);
    expect(finished).toMatchObject({ code: 64, stdout: '' });
    expect(finished.stderr).toContain(message);
    expect(finished.stderr).toContain(`Run "nestjs-lockmgr ${helpCommand}" for usage.`);
  });

  it.concurrent.each([
    [['--url', 'redis://cache:6379'], {}, '--url has the unsupported scheme "redis:"'],
    [[], { DATABASE_URL: 'mongodb://db/app' }, 'DATABASE_URL has the unsupported scheme "mongodb:"'],
    [['--url', 'postgres://user:hunter2@[::1/db'], {}, '--url is not a valid postgres:// URL.'],
    [['--url', 'postgresql:///db'], {}, '--url names no host'],
    [['--url', 'postgres://user:hunter2@db.internal/%zz'], {}, '--url has a malformed %-escape in its database name.'],
    [['--url', ''], {}, '--url is empty'],
    [['--url', 'sqlite::memory:'], {}, '--url names an in-memory SQLite database'],
    [[], {}, 'no database given: pass --url URL or set DATABASE_URL.'],
  ])('rejects the database %j %j with exit code 64', async (args, env, message) => {
    const finished = await runCommand(['list', ...args], { env });
    expect(finished).toMatchObject({ code: 64, stdout: '' });
    expect(finished.stderr).toContain(`nestjs-lockmgr list: ${message}`);
    expect(finished.stderr).not.toContain('hunter2');
  });

  it('exits 1 when the server does not answer, naming it without its password', async () => {
    const port = await closedPort();
    const finished = await runCommand(['list', '--url', `postgres://postgres:hunter2@127.0.0.1:${port}/test`]);
    expect(finished).toMatchObject({ code: 1, stdout: '' });
    expect(finished.stderr).toBe(
      `nestjs-lockmgr list: Could not connect to the PostgreSQL database "test" at 127.0.0.1:${port}: connect ECONNREFUSED 127.0.0.1:${port}\n`,
    );
  });

  it('exits 1 when the SQLite file does not exist, and does not create it', async () => {
    const file = sqliteFile(uniqueName('missing'));
    const finished = await runCommand(['list', '--url', `sqlite:${file}`]);
    expect(finished).toMatchObject({ code: 1, stdout: '', stderr: `nestjs-lockmgr list: The SQLite file ${file} does not exist.\n` });
    expect(existsSync(file)).toBe(false);
  });
});

describeEachDatabase('The nestjs-lockmgr command on the locks of a running app', (database: TestDatabase) => {
  const isolation = uniqueName('command');
  const url = { postgres: POSTGRES_URL, mysql: MYSQL_URL, sqlite: sqliteFile(isolation) }[database.kind];
  let app: LockApp;

  /** The command on this file's lock table. */
  const command = ([name, ...args]: string[], input?: string) => runCommand([name, '--url', url, '--table', isolation, ...args], { input });

  beforeAll(async () => {
    app = await createLockApp(database, isolation);
  });
  afterEach(async () => {
    for (const lock of await app.locks.listLocks()) await app.locks.unlock(lock.name);
  });
  afterAll(async () => {
    await app?.close();
    await dropLockTable(database, isolation);
  });

  describe('list', () => {
    let reports: LockEntity;
    let nightly: LockEntity;
    beforeEach(async () => {
      reports = await app.locks.getLock('reports:rebuild', { expires: 600, lockedBy: 'web-1', lockProcess: 4242 });
      nightly = await app.locks.getLock('nightly', { expires: null, lockedBy: 'web-2', lockProcess: null });
    });

    it("shows the app's locks as an aligned table, by name", async () => {
      const finished = await command(['list']);
      expect(finished).toMatchObject({ code: 0, stderr: '' });
      const [heading, ...rows] = tableCells(finished.stdout);
      expect(heading).toEqual(['NAME', 'LOCKED BY', 'PROCESS', 'LOCKED UNTIL', 'FENCING TOKEN']);
      expect(rows).toEqual([
        ['nightly', 'web-2', '-', 'never', String(nightly.fencingToken)],
        ['reports:rebuild', 'web-1', '4242', expect.stringMatching(/^\S+ \S+ UTC \(in (9 min \d+ s|10 min 0 s)\)$/), String(reports.fencingToken)],
      ]);
      expect(rows[1][3]).toContain(utcText(reports.lockedUntil!));
      expectAligned(finished.stdout);
      expect(finished.stdout).not.toContain(reports.owner);
    });

    it('prints them as JSON with --json, without owner tokens', async () => {
      const finished = await command(['list', '--json']);
      expect(finished).toMatchObject({ code: 0, stderr: '' });
      expect(JSON.parse(finished.stdout)).toEqual([
        {
          name: 'nightly',
          lockedBy: 'web-2',
          lockProcess: null,
          lockedUntil: null,
          expiresSeconds: null,
          fencingToken: nightly.fencingToken,
          createdAt: nightly.createdAt.toISOString(),
          updatedAt: nightly.updatedAt.toISOString(),
        },
        {
          name: 'reports:rebuild',
          lockedBy: 'web-1',
          lockProcess: 4242,
          lockedUntil: reports.lockedUntil!.toISOString(),
          expiresSeconds: expect.any(Number),
          fencingToken: reports.fencingToken,
          createdAt: reports.createdAt.toISOString(),
          updatedAt: reports.updatedAt.toISOString(),
        },
      ]);
      for (const lock of [reports, nightly]) expect(finished.stdout).not.toContain(lock.owner);
    });

    it('says when no lock is held, and prints an empty array with --json', async () => {
      for (const lock of [reports, nightly]) await app.locks.unlock(lock);
      expect(await command(['list'])).toMatchObject({ code: 0, stdout: 'No locks are held.\n', stderr: '' });
      expect(await command(['list', '--json'])).toMatchObject({ code: 0, stdout: '[]\n', stderr: '' });
    });

    it('reads the database from DATABASE_URL when --url is not given', async () => {
      const finished = await runCommand(['list', '--json', '--table', isolation], { env: { DATABASE_URL: url } });
      expect(finished).toMatchObject({ code: 0, stderr: '' });
      expect(JSON.parse(finished.stdout).map((lock: LockEntity) => lock.name)).toEqual(['nightly', 'reports:rebuild']);
    });

    it('shows control characters in names escaped, on one line', async () => {
      await app.locks.getLock('bad\nname\u001b[31m', { expires: 60 });
      const finished = await command(['list']);
      expect(finished.stdout).toContain('bad\\nname\\u001b[31m  ');
      expect(finished.stdout).not.toContain('\u001b');
      expectAligned(finished.stdout);
    });
  });

  it('clear force-releases the named locks of the app, and says which were not locked', async () => {
    const reports = await app.locks.getLock('reports', { expires: 60 });
    await app.locks.getLock('other', { expires: 60 });
    const finished = await command(['clear', 'reports', 'missing']);
    expect(finished).toMatchObject({ code: 0, stdout: 'released    reports\nnot locked  missing\n', stderr: '' });
    expect(await app.locks.isLocked('reports')).toBe(false);
    await expect(app.locks.renewLock(reports)).rejects.toBeInstanceOf(LockNotFoundError);
    expect(await app.locks.isLocked('other')).toBe(true);
  });

  it('clear takes names that start with a dash after --', async () => {
    await app.locks.getLock('-odd', { expires: 60 });
    expect(await command(['clear', '--', '-odd'])).toMatchObject({ code: 0, stdout: 'released    -odd\n', stderr: '' });
  });

  describe('set', () => {
    it('creates locks with the given lease, holder and process id, then renews them', async () => {
      const created = await command(['set', 'one', 'two', '--timeout', '30', '--locked-by', 'ops', '--pid', '77']);
      expect(created).toMatchObject({ code: 0, stderr: '' });
      expect(tableCells(created.stdout)).toEqual([
        ['NAME', 'WAS LOCKED', 'NOW LOCKED', 'STATUS', 'LOCKED UNTIL'],
        ['one', 'no', 'yes', 'created', expect.stringMatching(/ UTC \(in (2\d|30) s\)$/)],
        ['two', 'no', 'yes', 'created', expect.stringMatching(/ UTC \(in (2\d|30) s\)$/)],
        [''],
        [COUNTS(2, 0, 0, 0)],
      ]);
      expectAligned(created.stdout.split('\n\n')[0]);
      const locks = await app.locks.listLocks();
      expect(locks).toMatchObject([
        { name: 'one', lockedBy: 'ops', lockProcess: 77 },
        { name: 'two', lockedBy: 'ops', lockProcess: 77 },
      ]);
      for (const lock of locks) expect(lock.expiresSeconds).toBeLessThanOrEqual(30);

      const renewed = await command(['set', 'one', 'three']);
      expect(renewed).toMatchObject({ code: 0, stderr: '' });
      expect(tableCells(renewed.stdout)).toEqual([
        ['NAME', 'WAS LOCKED', 'NOW LOCKED', 'STATUS', 'LOCKED UNTIL'],
        ['one', 'yes', 'yes', 'renewed', expect.stringMatching(/ UTC \(in (9|10) min \d+ s\)$/)],
        ['three', 'no', 'yes', 'created', expect.stringMatching(/ UTC \(in (9|10) min \d+ s\)$/)],
        [''],
        [COUNTS(1, 1, 0, 0)],
      ]);
      const one = (await app.locks.listLocks()).find((lock) => lock.name === 'one')!;
      expect(one.expiresSeconds).toBeGreaterThan(30);
      // The process id is not this command's, which exits at once.
      expect((await app.locks.listLocks()).find((lock) => lock.name === 'three')!.lockProcess).toBeNull();
    });

    it('--no-timeout creates locks that never expire', async () => {
      const finished = await command(['set', 'forever', '--no-timeout']);
      expect(tableCells(finished.stdout)[1]).toEqual(['forever', 'no', 'yes', 'created', 'never']);
      expect(await app.locks.listLocks()).toMatchObject([{ name: 'forever', lockedUntil: null }]);
    });

    it('--fail exits 2 when a name is locked, and creates nothing', async () => {
      const held = await app.locks.getLock('held', { expires: 60, lockedBy: 'web-1' });
      const finished = await command(['set', 'fresh', 'held', 'other', '--fail']);
      expect(finished).toMatchObject({ code: 2, stdout: '' });
      expect(finished.stderr).toMatch(/^Aborted \(--fail\): lock "held" already exists \(locked by web-1, expires: .+ UTC \(in (\d+ s|1 min 0 s)\)\)\. No lock was created\.\n$/);
      expect((await app.locks.listLocks()).map((lock) => lock.name)).toEqual(['held']);
      // The holder still owns its lock, untouched.
      expect((await app.locks.renewLock(held, { expires: 60 })).lockedUntil!.getTime()).toBeGreaterThanOrEqual(held.lockedUntil!.getTime());
    });

    it('--only-renew renews locked names and creates none', async () => {
      await app.locks.getLock('held', { expires: 5 });
      const finished = await command(['set', 'held', 'free', '--only-renew', '--timeout', '300']);
      expect(finished).toMatchObject({ code: 0, stderr: '' });
      expect(tableCells(finished.stdout)).toEqual([
        ['NAME', 'WAS LOCKED', 'NOW LOCKED', 'STATUS', 'LOCKED UNTIL'],
        ['held', 'yes', 'yes', 'renewed', expect.stringMatching(/ UTC \(in [45] min \d+ s\)$/)],
        ['free', 'no', 'no', 'skipped', '-'],
        [''],
        [COUNTS(0, 1, 1, 0)],
      ]);
      expect(await app.locks.isLocked('free')).toBe(false);
      expect((await app.locks.listLocks())[0].expiresSeconds).toBeGreaterThan(5);
    });

    it('--no-renew creates free names and leaves locked ones as they are', async () => {
      const held = await app.locks.getLock('held', { expires: 60 });
      const finished = await command(['set', 'held', 'fresh', '--no-renew', '--timeout', '300']);
      expect(finished).toMatchObject({ code: 0, stderr: '' });
      expect(tableCells(finished.stdout)).toEqual([
        ['NAME', 'WAS LOCKED', 'NOW LOCKED', 'STATUS', 'LOCKED UNTIL'],
        ['held', 'yes', 'yes', 'skipped', expect.stringContaining(utcText(held.lockedUntil!))],
        ['fresh', 'no', 'yes', 'created', expect.stringMatching(/ UTC \(in [45] min \d+ s\)$/)],
        [''],
        [COUNTS(1, 0, 0, 1)],
      ]);
      const after = await app.locks.listLocks();
      expect(after.find((lock) => lock.name === 'held')!.lockedUntil).toEqual(held.lockedUntil);
    });
  });

  describe('reset', () => {
    beforeEach(async () => {
      await app.locks.getLock('a', { expires: 60 });
      await app.locks.getLock('b', { expires: null });
    });

    it('deletes nothing when the confirmation is not the table name', async () => {
      const finished = await command(['reset'], 'yes\n');
      expect(finished).toMatchObject({ code: 1, stdout: '' });
      expect(finished.stderr).toContain(`This deletes 2 locks in the table "${isolation}"`);
      expect(finished.stderr).toContain(`Type the table name (${isolation}) to confirm: `);
      expect(finished.stderr).toMatch(/\nAborted: nothing was deleted\.\n$/);
      expect((await app.locks.listLocks()).map((lock) => lock.name)).toEqual(['a', 'b']);
    });

    it('deletes nothing when the input ends without an answer', async () => {
      const finished = await command(['reset']);
      expect(finished).toMatchObject({ code: 1, stdout: '' });
      expect(finished.stderr).toMatch(/\nAborted \(no answer\): nothing was deleted\. --force skips the confirmation\.\n$/);
      expect(await app.locks.listLocks()).toHaveLength(2);
    });

    it('deletes every lock once the table name is typed', async () => {
      const finished = await command(['reset'], `${isolation}\n`);
      expect(finished).toMatchObject({ code: 0, stdout: 'Deleted 2 locks.\n' });
      expect(await app.locks.listLocks()).toEqual([]);
    });

    it('deletes every lock, and the rows of expired ones, without asking when --force is given', async () => {
      await app.locks.getLock('short', { expires: 0.05 });
      await sleep(100);
      const finished = await command(['reset', '--force']);
      expect(finished).toMatchObject({ code: 0, stdout: 'Deleted 2 locks and 1 expired row.\n', stderr: '' });
      expect(await tableRows(app, isolation)).toEqual([]);
    });

    it('says when there is nothing to delete', async () => {
      await command(['reset', '--force']);
      expect(await command(['reset'])).toMatchObject({ code: 0, stdout: 'No locks are held: nothing to delete.\n', stderr: '' });
    });
  });

  it('exits 1 when the lock table does not exist, and does not create it', async () => {
    const missing = `${isolation}_missing`;
    const finished = await runCommand(['list', '--url', url, '--table', missing]);
    expect(finished).toMatchObject({ code: 1, stdout: '' });
    // PostgreSQL names the schema the table was looked for in: here, the one the search path finds.
    const table = database.kind === 'postgres' ? `"public"."${missing}"` : `"${missing}"`;
    expect(finished.stderr).toMatch(new RegExp(`^nestjs-lockmgr list: In the .+: The lock table ${table.replace(/\./g, '\\.')} does not exist\\.`));
    expect(finished.stderr).toContain('give that name with --table');
    const runner = app.dataSource.createQueryRunner();
    try {
      expect(await runner.hasTable(missing)).toBe(false);
    } finally {
      await runner.release();
    }
  });
});

describeOnDatabase(testDatabase('sqlite'), 'The nestjs-lockmgr command given an SQLite file', () => {
  const isolation = uniqueName('command_file');
  const file = sqliteFile(isolation);
  let app: LockApp;
  beforeAll(async () => {
    app = await createLockApp(testDatabase('sqlite'), isolation);
    await app.locks.getLock('here', { expires: 60 });
  });
  afterAll(async () => {
    await app?.close();
    await dropLockTable(testDatabase('sqlite'), isolation);
  });

  it.each([file, `sqlite:${file}`, `file:${file}`, pathToFileURL(file).href])('as %s', async (url) => {
    const finished = await runCommand(['list', '--json', '--url', url, '--table', isolation]);
    expect(finished).toMatchObject({ code: 0, stderr: '' });
    expect(JSON.parse(finished.stdout)).toMatchObject([{ name: 'here' }]);
  });
});
