import { appendFileSync, existsSync, readFileSync, readlinkSync, renameSync, symlinkSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/**
 * The resource the soak's workers write, as a storage service would be: it remembers the highest
 * fencing token that read or wrote it, and refuses a write carrying a lower one (the holder was
 * fenced off). Accepted writes go to an append-only log as lines "<token> <value>".
 *
 * It lives in files shared by processes the soak kills with SIGKILL at any moment, and must stay
 * consistent through that, as a real storage service would: the fence is replaced by a rename, never
 * left half written, and one operation at a time holds a mark naming its process. A process killed
 * while holding the mark leaves it behind; only the soak, which killed it, removes it
 * (`removeMarkOf`), since a process that guessed its holder dead could remove a live one.
 */
export class FencedStore {
  constructor(
    private readonly directory: string,
    private readonly name: string,
  ) {}

  private path(suffix: string): string {
    return join(this.directory, `${this.name}.${suffix}`);
  }

  /** The store's own atomicity, apart from the lock under test. */
  private exclusively<T>(operation: () => T): T {
    for (;;) {
      try {
        // A symbolic link is created at once with its content, the holder's process id.
        symlinkSync(String(process.pid), this.path('busy'));
        break;
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
        Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 1);
      }
    }
    try {
      return operation();
    } finally {
      unlinkSync(this.path('busy'));
    }
  }

  /** The fence: the highest token that read or wrote the resource. */
  highestToken(): number {
    return existsSync(this.path('fence')) ? Number(readFileSync(this.path('fence'), 'utf8')) : 0;
  }

  private raiseFence(token: number): void {
    const next = this.path(`fence.${process.pid}`);
    writeFileSync(next, String(token));
    renameSync(next, this.path('fence'));
  }

  /** The value last written; raises the fence to `token`. */
  read(token: number): number {
    return this.exclusively(() => {
      if (token > this.highestToken()) this.raiseFence(token);
      const lines = this.log().trimEnd().split('\n');
      return Number((lines.at(-1) || '0 0').split(' ')[1]);
    });
  }

  /** False when the token was fenced off. */
  write(token: number, value: number): boolean {
    return this.exclusively(() => {
      if (token < this.highestToken()) return false;
      this.raiseFence(token);
      appendFileSync(this.path('log'), `${token} ${value}\n`);
      return true;
    });
  }

  log(): string {
    return existsSync(this.path('log')) ? readFileSync(this.path('log'), 'utf8') : '';
  }

  /** The accepted writes, in order. */
  entries(): Array<{ token: number; value: number }> {
    return this.log()
      .split('\n')
      .filter(Boolean)
      .map((line) => {
        const [token, value] = line.split(' ').map(Number);
        return { token, value };
      });
  }

  /** Every sign of two holders at once in the log: a value out of sequence, or a token not above the one before. */
  violations(): string[] {
    const violations: string[] = [];
    this.entries().forEach(({ token, value }, i, entries) => {
      if (value !== i + 1) violations.push(`${this.name}: write ${i + 1} wrote value ${value}`);
      if (i > 0 && token <= entries[i - 1].token) violations.push(`${this.name}: write ${i + 1} carried token ${token} after ${entries[i - 1].token}`);
    });
    return violations;
  }

  /** Removes the mark of process `pid`, which must have exited, if it died holding it. */
  removeMarkOf(pid: number): void {
    try {
      if (readlinkSync(this.path('busy')) === String(pid)) unlinkSync(this.path('busy'));
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
    }
  }
}
