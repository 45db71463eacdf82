import { NestFactory } from '@nestjs/core';
import { AppModule } from './app.module';
import { sampleDatabase } from './database';
import { logLockEvents } from './lock-events';
import { printMetrics } from './metrics';

async function bootstrap(): Promise<void> {
  // Skipped runs and lost locks always; LOCK_EVENTS=1 adds every acquisition, renewal and release.
  logLockEvents(process.env.LOCK_EVENTS === '1');
  // OTEL=1: the lock metrics, every 10 seconds (before the app starts, as an app registers its SDK).
  if (process.env.OTEL === '1') printMetrics();
  // Nest's start-up lines, times three instances, would bury the ticks: VERBOSE=1 shows them, and
  // the debug lines.
  const app = await NestFactory.create(AppModule, {
    logger: process.env.VERBOSE === '1' ? ['error', 'warn', 'log', 'debug'] : ['error', 'warn'],
  });
  // Stopping waits for a running job or capture to finish under its lock, then releases it.
  app.enableShutdownHooks();
  const port = Number(process.env.PORT ?? 3000);
  await app.listen(port);
  console.log(`listening on http://localhost:${port}, locks in the ${sampleDatabase().description}`);
}

void bootstrap();
