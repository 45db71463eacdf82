import { Injectable } from '@nestjs/common';
import { Cron } from '@nestjs/schedule';
import { LockContext, WithLock } from '../lib';

/**
 * Every instance's timer fires at each tick; the lock lets one of them run the job. The job is over
 * in milliseconds, so minHold keeps the lock for 3 seconds: long enough that an instance whose timer
 * fires a little late finds it still held, short enough to be free again for the next tick.
 */
@Injectable()
export class ReportJob {
  @Cron('*/5 * * * * *')
  @WithLock('report', { expires: 60, minHold: 3 })
  async run() {
    const tick = new Date().toTimeString().slice(0, 8);
    console.log(`ran tick ${tick} of the report job (fencing token ${LockContext.current().fencingToken})`);
  }
}
