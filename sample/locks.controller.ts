import { Controller, Get } from '@nestjs/common';
import { LockService } from '../lib';

/** The live locks, as operators see them (owner tokens stay secret: a lock serialises without its owner). */
@Controller('locks')
export class LocksController {
  constructor(private readonly locks: LockService) {}

  @Get()
  list() {
    return this.locks.listLocks();
  }
}
