import { spawn } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { createLockApp, dropLockTable, LockApp } from './support/lock-app';
import { compiledCommand, Finished } from './support/processes';
import { describeEachDatabase, MYSQL_URL, POSTGRES_URL, sqliteFile, TestDatabase, uniqueName } from './support/test-databases';

/** Far more output than a pipe buffers (64 KiB on Linux), so that the command is still writing when the reader leaves. */
const LOCK_COUNT = 3000;

/** The command with its output read up to the first line, as `| head -1` does, and the reading end then closed. */
function runIntoClosedPipe(args: string[]): Promise<Finished & { firstLine: string }> {
  const child = spawn(process.execPath, [compiledCommand(), ...args], {
    env: { PATH: process.env.PATH ?? '' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr.on('data', (chunk) => (stderr += chunk));
  const firstLine = new Promise<string>((resolve) => {
    const lines = createInterface({ input: child.stdout });
    lines.once('line', (line) => {
      resolve(line);
      lines.close();
      child.stdout.destroy();
    });
  });
  return new Promise((resolve, reject) => {
    child.on('error', reject);
    child.on('close', async (code, signal) => resolve({ code, signal, stdout: '', stderr, firstLine: await firstLine }));
  });
}

describeEachDatabase('nestjs-lockmgr writing into a pipe that its reader closed', (database: TestDatabase) => {
  const isolation = uniqueName('command_pipe');
  const url = { postgres: POSTGRES_URL, mysql: MYSQL_URL, sqlite: sqliteFile(isolation) }[database.kind];
  let app: LockApp;

  beforeAll(async () => {
    app = await createLockApp(database, isolation);
    const names = Array.from({ length: LOCK_COUNT }, (_, index) => `report:${String(index).padStart(5, '0')}`);
    // In batches, each well within the operation timeout on a busy server.
    for (let start = 0; start < LOCK_COUNT; start += 250) await app.locks.setLock(names.slice(start, start + 250), { timeout: 600 });
  }, 60_000);
  afterAll(async () => {
    await app?.close();
    await dropLockTable(database, isolation);
  });

  it.each([[['list']], [['list', '--json']]])('%j ends quietly with exit code 141, as a command ended by SIGPIPE does', async (args) => {
    const finished = await runIntoClosedPipe([...args, '--url', url, '--table', isolation]);
    expect(finished.firstLine).toMatch(args.includes('--json') ? /^\[$/ : /^NAME +LOCKED BY/);
    // Had the command left its connection open, it would not have exited.
    expect(finished).toMatchObject({ code: 141, signal: null, stderr: '' });
  });

  it('reports any other failure to write its output, with exit code 1', async () => {
    const full = openSync('/dev/full', 'w');
    try {
      const child = spawn(process.execPath, [compiledCommand(), 'list', '--url', url, '--table', isolation], {
        env: { PATH: process.env.PATH ?? '' },
        stdio: ['ignore', full, 'pipe'],
      });
      let stderr = '';
      child.stderr!.on('data', (chunk) => (stderr += chunk));
      const code = await new Promise((resolve) => child.on('close', resolve));
      expect({ code, stderr }).toEqual({
        code: 1,
        stderr: expect.stringMatching(/^nestjs-lockmgr list: Could not write the output: .*ENOSPC/),
      });
      expect(stderr).not.toMatch(/\n +at /);
    } finally {
      closeSync(full);
    }
  });
});
