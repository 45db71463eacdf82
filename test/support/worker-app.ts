import { INestApplicationContext, LoggerService, LogLevel, Module, ModuleMetadata } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { TypeOrmModule } from '@nestjs/typeorm';
import type { DataSourceOptions } from 'typeorm';
import { LockMgrModule, LockMgrModuleOptions } from '../../lib';

/** Where a worker process finds the test's lock table. */
export interface WorkerDatabase {
  dataSourceOptions: DataSourceOptions;
  tableName: string;
}

export interface WorkerAppOptions {
  /** Lock module options beyond the table (the clean-up task is off unless set here). */
  lockOptions?: LockMgrModuleOptions;
  /** Modules and providers the worker's app adds. */
  metadata?: ModuleMetadata;
  logger?: LoggerService | LogLevel[] | false;
}

/**
 * The Nest application context of a test worker process, as an instance of a real app has it: the
 * app's TypeORM data source and the lock module on the test's table, next to the worker's own parts.
 */
export async function createWorkerApp(
  database: WorkerDatabase,
  { lockOptions = {}, metadata = {}, logger = ['error', 'warn'] }: WorkerAppOptions = {},
): Promise<INestApplicationContext> {
  @Module({
    ...metadata,
    imports: [
      ...(metadata.imports ?? []),
      TypeOrmModule.forRoot(database.dataSourceOptions),
      LockMgrModule.forRoot({ tableName: database.tableName, cleanupInterval: 0, ...lockOptions }),
    ],
  })
  class WorkerModule {}

  return NestFactory.createApplicationContext(WorkerModule, { logger });
}
