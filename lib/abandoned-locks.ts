import { Logger } from '@nestjs/common';
import type { LockDialect } from './dialects/lock-dialect';

/** Retries of a clean-up that could not reach the database back off up to this. */
const LONGEST_RETRY_MS = 30_000;
const FIRST_RETRY_MS = 250;

interface AbandonedLock {
  name: string;
  owner: string;
  /** `performance.now()` after which the database can no longer commit a statement sent before the lock was abandoned. */
  settledAt: number;
  retryMs: number;
  timer?: NodeJS.Timeout;
}

/**
 * Owner tokens this process gave up on, whose rows must not outlive that decision: an acquisition whose
 * caller was told it failed (the database may still commit it after the client stopped waiting), and a
 * lock a manager declared lost (a renewal still on its way may extend it). Each is released by its owner
 * token, which only that acquisition had, so the release never touches a lock someone else holds. It is
 * released at once, and again once the server has ended any statement still running (its statement time
 * limit, `settleMs`), retrying with backoff while the database cannot be reached.
 */
export class AbandonedLocks {
  private readonly logger = new Logger('LockService');
  private readonly pending = new Set<AbandonedLock>();
  private closed = false;

  constructor(
    private readonly dialect: LockDialect,
    private readonly settleMs: number,
  ) {}

  abandon(name: string, owner: string): void {
    if (this.closed) return;
    const abandoned: AbandonedLock = { name, owner, settledAt: performance.now() + this.settleMs, retryMs: FIRST_RETRY_MS };
    this.pending.add(abandoned);
    void this.release(abandoned);
  }

  /** How many abandoned locks are still to be made sure of. */
  get size(): number {
    return this.pending.size;
  }

  private async release(abandoned: AbandonedLock): Promise<void> {
    const startedAt = performance.now();
    try {
      const released = await this.dialect.release({ name: abandoned.name, owner: abandoned.owner });
      if (released) this.logger.debug(`Released lock "${abandoned.name}", which this process had given up on.`);
    } catch {
      this.retry(abandoned, abandoned.retryMs);
      abandoned.retryMs = Math.min(LONGEST_RETRY_MS, abandoned.retryMs * 2);
      return;
    }
    if (startedAt >= abandoned.settledAt) this.pending.delete(abandoned);
    else this.retry(abandoned, abandoned.settledAt - performance.now());
  }

  private retry(abandoned: AbandonedLock, delayMs: number): void {
    if (this.closed) return;
    abandoned.timer = setTimeout(() => void this.release(abandoned), Math.max(0, delayMs));
    abandoned.timer.unref();
  }

  /**
   * At shutdown: one last release of each lock still pending, without waiting for its statement limit.
   * A lock whose acquisition the server commits even later stays until its lease ends.
   */
  async close(): Promise<void> {
    this.closed = true;
    const last = [...this.pending].map((abandoned) => {
      clearTimeout(abandoned.timer);
      return this.dialect.release({ name: abandoned.name, owner: abandoned.owner });
    });
    this.pending.clear();
    await Promise.allSettled(last);
  }
}
