import { Controller, Get } from '@nestjs/common';
import { HealthCheck, HealthCheckService } from '@nestjs/terminus';
import { LockMgrHealthIndicator } from '../lib';

/** `GET /health`: 200 while the lock table answers, 503 with the reason when it does not. */
@Controller('health')
export class HealthController {
  constructor(
    private readonly health: HealthCheckService,
    private readonly lockmgr: LockMgrHealthIndicator,
  ) {}

  @Get()
  @HealthCheck()
  check() {
    return this.health.check([() => this.lockmgr.isHealthy('locks')]);
  }
}
