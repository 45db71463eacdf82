import type { LoggerService } from '@nestjs/common';

export interface LogEntry {
  level: 'log' | 'error' | 'warn' | 'debug' | 'verbose' | 'fatal';
  message: string;
  context?: string;
}

/** A Nest logger that keeps every line, so a test can assert what an operator would read. */
export class RecordingLogger implements LoggerService {
  readonly entries: LogEntry[] = [];

  log(message: unknown, context?: string) {
    this.record('log', message, context);
  }
  error(message: unknown, ...rest: unknown[]) {
    this.record('error', message, rest.at(-1) as string | undefined);
  }
  warn(message: unknown, context?: string) {
    this.record('warn', message, context);
  }
  debug(message: unknown, context?: string) {
    this.record('debug', message, context);
  }
  verbose(message: unknown, context?: string) {
    this.record('verbose', message, context);
  }
  fatal(message: unknown, context?: string) {
    this.record('fatal', message, context);
  }

  lines(level: LogEntry['level'], context?: string): string[] {
    return this.entries.filter((entry) => entry.level === level && (!context || entry.context === context)).map((entry) => entry.message);
  }

  private record(level: LogEntry['level'], message: unknown, context?: string) {
    this.entries.push({ level, message: String(message), context });
  }
}
