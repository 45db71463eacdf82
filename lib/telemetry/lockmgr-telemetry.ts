import { Inject, Injectable, OnModuleInit } from '@nestjs/common';
import { LockOperations } from '../lock-operations';
import { LOCKMGR_OPTIONS } from '../lockmgr.constants';
import type { ResolvedLockMgrOptions } from '../lockmgr-options';
import { loadOptionalDependency } from '../optional-dependency';
import { LOCKMGR_METER, recordLockMetrics } from './lock-metrics';

type OpenTelemetryApi = typeof import('@opentelemetry/api');

/**
 * @internal Records the OpenTelemetry metrics of the module's lock table when `@opentelemetry/api` is
 * installed, the app registered a meter provider before the module started, and the `telemetry`
 * option is not false: from the module's start to the very end of its shutdown, so that the locks it
 * lets go of while shutting down are counted.
 */
@Injectable()
export class LockMgrTelemetry implements OnModuleInit {
  constructor(
    private readonly operations: LockOperations,
    @Inject(LOCKMGR_OPTIONS) private readonly options: ResolvedLockMgrOptions,
  ) {}

  onModuleInit(): void {
    if (!this.options.telemetry) return;
    const api = loadOptionalDependency<OpenTelemetryApi>('@opentelemetry/api');
    if (!api) return;
    const meter = api.metrics.getMeter(LOCKMGR_METER);
    // With no meter provider registered, the API's meter records nothing: the lock events then stay
    // unsubscribed, and cost nothing, as in an app without the package.
    if (meter instanceof api.createNoopMeter().constructor) return;
    const stop = recordLockMetrics(meter, this.options.tableName, this.operations.elapsed);
    this.operations.closed.addEventListener('abort', stop, { once: true });
  }
}
