import { appendFileSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SqliteWalWatcher } from '../lib/dialects/sqlite/sqlite-wal-watcher';
import { LibraryTimers } from './support/library-timers';
import { sleep, until } from './support/lock-app';

describe("The watch on SQLite's write-ahead log", () => {
  let folder: string;
  let log: string;

  beforeEach(() => {
    folder = mkdtempSync(join(tmpdir(), 'lockmgr-wal-'));
    log = join(folder, 'locks.sqlite-wal');
    writeFileSync(log, '');
  });
  afterEach(() => rmSync(folder, { recursive: true, force: true }));

  it('wakes the waiters of a release that the read woken by its last write to the log did not see yet', async () => {
    // A commit marks its frames committed only after writing them: the read the write woke sees the lock
    // still held, and the next one sees it free. No write follows to wake another read.
    const reads: string[][] = [];
    const woken: string[] = [];
    const watcher = new SqliteWalWatcher(
      log,
      async (names) => {
        reads.push(names);
        return reads.length === 1 ? [] : names;
      },
      (name) => woken.push(name),
    );
    const stopWatching = watcher.watch('report');
    try {
      appendFileSync(log, 'the frames of a release');
      await until(async () => woken.length > 0, 1000);
      expect(woken).toEqual(['report']);
      expect(reads).toEqual([['report'], ['report']]);
    } finally {
      stopWatching();
    }
  });

  it('reads once when it finds every name free, and clears the read due again when it stops watching', async () => {
    const reads: string[][] = [];
    let stopWatching = () => undefined as void;
    let pendingAtStop: string[] | undefined;
    const watcher = new SqliteWalWatcher(
      log,
      async (names) => {
        reads.push(names);
        if (reads.length === 1) return names;
        // The last wait ends just after a read that found its name held: the read due again is not made.
        setImmediate(() => {
          stopWatching();
          pendingAtStop = timers.stillPending;
        });
        return [];
      },
      () => undefined,
    );
    const timers = new LibraryTimers().start();
    try {
      stopWatching = watcher.watch('report');
      appendFileSync(log, 'the frames of a release');
      await until(async () => reads.length === 1, 1000);
      await sleep(50);
      expect(reads).toHaveLength(1);
      appendFileSync(log, 'the frames of an acquisition');
      await until(async () => pendingAtStop !== undefined, 1000);
      expect(pendingAtStop).toEqual([]);
      await sleep(50);
      expect(reads).toHaveLength(2);
      expect(process.getActiveResourcesInfo()).not.toContain('FSEventWrap');
    } finally {
      timers.stop();
    }
  });
});
