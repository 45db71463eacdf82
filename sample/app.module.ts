import { Module } from '@nestjs/common';
import { TypeOrmModule } from '@nestjs/typeorm';
import { LockMgrModule } from '../lib';
import { sampleDataSourceOptions } from './database';
import { LocksController } from './locks.controller';

@Module({
  imports: [TypeOrmModule.forRoot(sampleDataSourceOptions()), LockMgrModule.forRoot({ lockedBy: process.env.INSTANCE_NAME })],
  controllers: [LocksController],
})
export class AppModule {}
