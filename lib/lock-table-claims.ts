import { Inject, Injectable, OnApplicationShutdown } from '@nestjs/common';
import type { DataSource } from 'typeorm';
import { LOCKMGR_DATA_SOURCE, LOCKMGR_OPTIONS } from './lockmgr.constants';
import type { ResolvedLockMgrOptions } from './lockmgr-options';

/** The lock tables each data source's lock modules use, in this process. */
const claims = new WeakMap<DataSource, Set<string>>();

/**
 * @internal One lock module per data source in an app: a second one, on the same table or another, would
 * be injected by the same token as the first, and one of them would silently win. Claimed when the module
 * starts (before its table is touched), given back when the app shuts down or the start fails.
 */
@Injectable()
export class LockTableClaim implements OnApplicationShutdown {
  private released = false;

  constructor(
    @Inject(LOCKMGR_DATA_SOURCE) private readonly dataSource: DataSource,
    @Inject(LOCKMGR_OPTIONS) private readonly options: ResolvedLockMgrOptions,
  ) {
    const tables = claims.get(dataSource) ?? new Set<string>();
    if (tables.size > 0) {
      const which = tables.has(options.tableName)
        ? `on the same data source and table "${options.tableName}"`
        : `on the same data source (tables "${[...tables].join('", "')}" and "${options.tableName}")`;
      throw new Error(
        `Two LockMgrModule ${which}: each data source takes one lock module. Import LockMgrModule.forRoot once per data source, and give each data source its own name.`,
      );
    }
    claims.set(dataSource, tables.add(options.tableName));
  }

  release(): void {
    if (this.released) return;
    this.released = true;
    claims.get(this.dataSource)?.delete(this.options.tableName);
  }

  onApplicationShutdown(): void {
    this.release();
  }
}
