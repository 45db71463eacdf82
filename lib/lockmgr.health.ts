import { Injectable, Logger } from '@nestjs/common';
import { ModuleRef } from '@nestjs/core';
import type { HealthIndicatorService } from '@nestjs/terminus';
import type { LockDatabaseError } from './errors';
import { LockOperations } from './lock-operations';
import { loadOptionalDependency } from './optional-dependency';
import { checkLockName } from './validation';

/**
 * What `isHealthy` resolves to: the result of a `@nestjs/terminus` health indicator, written out here
 * so that the package's types do not need terminus.
 */
export type LockMgrHealthResult<Key extends string = string> = Record<Key, { status: 'up' } | { status: 'down'; message: string }>;

/** Why a check is down, as a health endpoint (often public) may say it: never the driver's own words. */
type DownReason = 'timed out' | 'database unreachable' | 'database error';

/**
 * A health indicator for `@nestjs/terminus`: up when the lock table answers a read, down when it does
 * not within the module's `operationTimeout`. The result gives a generic reason only (`timed out`,
 * `database unreachable`, `database error`): a driver's message can name database users and internal
 * hosts, and health endpoints are often public. The full message goes to the Nest logger.
 *
 * `LockMgrModule` provides it, so inject it beside terminus's `HealthCheckService`:
 * `this.health.check([() => this.lockmgr.isHealthy('locks')])`. `@nestjs/terminus` is an optional
 * peer dependency: it is loaded by the first check, never when the app starts, so an app that does
 * not install it runs as before. A check needs `TerminusModule` in the app.
 */
@Injectable()
export class LockMgrHealthIndicator {
  private indicators?: HealthIndicatorService;
  private readonly logger = new Logger('LockMgrHealthIndicator');

  /** @internal Nest creates the indicator; inject it. */
  constructor(
    private readonly operations: LockOperations,
    private readonly moduleRef: ModuleRef,
  ) {}

  /**
   * Reads the lock table, and resolves to `{ [key]: { status: 'up' } }`, or to
   * `{ [key]: { status: 'down', message } }` when the database fails the read or does not answer in time,
   * where `message` is `timed out`, `database unreachable` or `database error`, and the error itself is
   * logged.
   *
   * @param key The key of the result in terminus's answer; `'lockmgr'` by default.
   */
  async isHealthy<Key extends string = 'lockmgr'>(key: Key = 'lockmgr' as Key): Promise<LockMgrHealthResult<Key>> {
    checkLockName(key, 'isHealthy key', Number.MAX_SAFE_INTEGER);
    const indicator = this.healthIndicatorService().check(key);
    try {
      await this.operations.readTable();
    } catch (error) {
      // A LockDatabaseError, saying what failed and the driver's reason.
      this.logger.error(`Health check "${key}" is down: ${(error as LockDatabaseError).message}`);
      return indicator.down({ message: downReason((error as LockDatabaseError).cause) });
    }
    return indicator.up();
  }

  private healthIndicatorService(): HealthIndicatorService {
    if (this.indicators) return this.indicators;
    const terminus = loadOptionalDependency<typeof import('@nestjs/terminus')>('@nestjs/terminus');
    if (!terminus) throw new Error('LockMgrHealthIndicator needs @nestjs/terminus: install it with "npm install @nestjs/terminus".');
    try {
      this.indicators = this.moduleRef.get(terminus.HealthIndicatorService, { strict: false });
    } catch {
      throw new Error('LockMgrHealthIndicator needs TerminusModule from @nestjs/terminus: import it in the app.');
    }
    return this.indicators;
  }
}

/**
 * Sorts a driver's error into a reason that names nothing of the database: the drivers' timeouts (and
 * the operation timeout) say "timeout" in their code or message; a network failure carries a system
 * error code (`ECONNREFUSED`, `ENOTFOUND`…) or says the connection ended.
 */
function downReason(cause: unknown): DownReason {
  const { code, message } = (cause ?? {}) as { code?: unknown; message?: unknown };
  const said = `${typeof code === 'string' ? code : ''} ${typeof message === 'string' ? message : ''}`;
  if (/timed?[ _-]?out/i.test(said)) return 'timed out';
  if ((typeof code === 'string' && /^E[A-Z]+$/.test(code)) || /connection (terminated|lost|closed)/i.test(said)) return 'database unreachable';
  return 'database error';
}
