import { Module } from '@nestjs/common';
import { ScheduleModule } from '@nestjs/schedule';
import { TerminusModule } from '@nestjs/terminus';
import { TypeOrmModule } from '@nestjs/typeorm';
import { LockMgrModule } from '../lib';
import { sampleDatabase } from './database';
import { HealthController } from './health.controller';
import { IndexerJob } from './indexer.job';
import { instanceName } from './instance';
import { LocksController } from './locks.controller';
import { PaymentsController } from './payments.controller';
import { ReportJob } from './report.job';

@Module({
  imports: [
    // Runs the @Cron job, and the lock module's clean-up of expired rows.
    ScheduleModule.forRoot(),
    TypeOrmModule.forRoot(sampleDatabase().options),
    LockMgrModule.forRoot({ lockedBy: instanceName }),
    // GET /health, with the lock module's health indicator.
    TerminusModule.forRoot(),
  ],
  controllers: [HealthController, LocksController, PaymentsController],
  providers: [ReportJob, IndexerJob],
})
export class AppModule {}
