import { Logger } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { AppModule } from './app.module';
import { describeDatabase, sampleDataSourceOptions } from './database';

async function bootstrap(): Promise<void> {
  const app = await NestFactory.create(AppModule);
  // Locks held by running jobs are released when the process is told to stop.
  app.enableShutdownHooks();
  const port = Number(process.env.PORT ?? 3000);
  await app.listen(port);
  new Logger('Sample').log(`Listening on http://localhost:${port}, locks in the ${describeDatabase(sampleDataSourceOptions())}`);
}

void bootstrap();
