import { Controller, Param, Post } from '@nestjs/common';
import { setTimeout as sleep } from 'node:timers/promises';
import { LockContext, WithLock } from '../lib';
import { instanceName } from './instance';

@Controller('payments')
export class PaymentsController {
  /**
   * One capture per payment at a time, whichever instance the request reaches. A second request for
   * the same payment waits up to 2 seconds for the lock, then gets 423 Locked with a Retry-After header
   * (at most the 10-second lease, renewed while the capture runs); other payments go ahead.
   */
  @Post(':id/capture')
  @WithLock((id: string) => `payment:${id}`, { wait: 2, expires: 10 })
  async capture(@Param('id') id: string) {
    const { name, fencingToken } = LockContext.current();
    await sleep(3000); // stands for the call to the payment provider
    return { payment: id, captured: true, instance: instanceName, lock: name, fencingToken };
  }
}
