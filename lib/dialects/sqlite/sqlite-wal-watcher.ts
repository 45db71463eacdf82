import { FSWatcher, watch } from 'node:fs';

/**
 * How long after a read that found a waited-for name still held it is read once more. A commit writes
 * its frames to the log (each write reported) and only then marks them committed in the log's index,
 * which is shared memory and reported by nothing: a read woken by the last write can run in between
 * and miss the release.
 */
const RECHECK_MS = 2;

/**
 * Wakes this process's waiters when another process releases their lock. Every commit to the database
 * file, a release among them, is written to its write-ahead log, and the operating system reports the
 * write (inotify on Linux). The report names no lock, so each one (or each burst of them) is followed
 * by one read of which names waited for are free now, and only their waiters wake; a read that finds
 * some still held is made once more shortly after (`RECHECK_MS`).
 *
 * One watch per process, open only while something waits: the first wait opens it and the last one
 * to end closes it, as does shutdown, which also clears the timer of a read to be made again.
 */
export class SqliteWalWatcher {
  private watcher?: FSWatcher;
  /** Names waited for, with how many waits want each. */
  private readonly watched = new Map<string, number>();
  private checking = false;
  private checkAgain = false;
  private recheck?: NodeJS.Timeout;

  constructor(
    private readonly walFile: string,
    /** The names among `names` that no live lock holds. */
    private readonly freeAmong: (names: string[]) => Promise<string[]>,
    private readonly onRelease: (name: string) => void,
  ) {}

  /**
   * Watches for releases of `name` until the function returned is called. Throws if the log cannot be
   * watched (the file is gone, the system refuses a watch): the wait polls instead.
   */
  watch(name: string): () => void {
    this.watcher ??= this.open();
    this.watched.set(name, (this.watched.get(name) ?? 0) + 1);
    let watching = true;
    return () => {
      if (!watching) return;
      watching = false;
      const left = this.watched.get(name)! - 1;
      if (left > 0) this.watched.set(name, left);
      else this.watched.delete(name);
      if (this.watched.size === 0) this.close();
    };
  }

  private open(): FSWatcher {
    const watcher = watch(this.walFile, () => this.check());
    watcher.on('error', () => {
      // The log went away, or the system stopped reporting: the waiters look now, then poll.
      if (this.watcher === watcher) this.close();
      for (const name of this.watched.keys()) this.onRelease(name);
    });
    return watcher;
  }

  /**
   * One read at a time: writes reported while it runs are covered by one more read after it. A read
   * woken by a write, not by its own timer, that finds a name still held is followed by one more.
   */
  private check(again = false): void {
    if (this.watched.size === 0) return;
    if (this.checking) {
      this.checkAgain = true;
      return;
    }
    this.checking = true;
    this.checkAgain = false;
    const names = [...this.watched.keys()];
    this.freeAmong(names)
      .then(
        (free) => {
          free.forEach(this.onRelease);
          if (!again && free.length < names.length && this.watcher) {
            this.recheck ??= setTimeout(() => {
              this.recheck = undefined;
              this.check(true);
            }, RECHECK_MS).unref();
          }
        },
        // The waiters' own attempts will meet whatever made the read fail.
        () => names.forEach(this.onRelease),
      )
      .finally(() => {
        this.checking = false;
        if (this.checkAgain && this.watched.size > 0) this.check();
      });
  }

  close(): void {
    this.watcher?.close();
    this.watcher = undefined;
    clearTimeout(this.recheck);
    this.recheck = undefined;
  }
}
