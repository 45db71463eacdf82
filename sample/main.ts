import { NestFactory } from '@nestjs/core';
import { AppModule } from './app.module';
import { describeDatabase, sampleDataSourceOptions } from './database';

async function bootstrap(): Promise<void> {
  // Nest's start-up lines, times three instances, would bury the ticks: VERBOSE=1 shows them, and
  // @WithLock's debug line from each instance that skipped a tick.
  const app = await NestFactory.create(AppModule, {
    logger: process.env.VERBOSE === '1' ? ['error', 'warn', 'log', 'debug'] : ['error', 'warn'],
  });
  // Stopping waits for a running job or capture to finish under its lock, then releases it.
  app.enableShutdownHooks();
  const port = Number(process.env.PORT ?? 3000);
  await app.listen(port);
  console.log(`listening on http://localhost:${port}, locks in the ${describeDatabase(sampleDataSourceOptions())}`);
}

void bootstrap();
