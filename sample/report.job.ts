import { Injectable } from '@nestjs/common';
import { Cron } from '@nestjs/schedule';
import { LockContext, WithLock } from '../lib';

/**
 * Every instance's timer fires at each tick; one of them takes the tick and runs the job. The job is
 * over in milliseconds, yet an instance whose timer fires late finds the tick taken and skips it.
 */
@Injectable()
export class ReportJob {
  @Cron('*/5 * * * * *')
  @WithLock('report', { expires: 60 })
  async run() {
    const tick = new Date().toTimeString().slice(0, 8);
    console.log(`ran tick ${tick} of the report job (fencing token ${LockContext.current().fencingToken})`);
  }
}
