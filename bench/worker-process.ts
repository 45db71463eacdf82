import { ChildProcess, fork } from 'node:child_process';
import { join } from 'node:path';
import { BENCH_RUN_VARIABLE } from './bench-app';

/**
 * A benchmark process of its own (an app instance), driven by messages. Scripts run compiled, from
 * `dist/bench/` (`npm run bench` builds first).
 */
export class WorkerProcess {
  private readonly child: ChildProcess;
  private readonly inbox: unknown[] = [];
  private readonly readers: ((message: unknown) => void)[] = [];

  constructor(script: string, args: string[] = [], execArgv: string[] = []) {
    this.child = fork(join(__dirname, script), args, {
      execArgv,
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
      env: { ...process.env, [BENCH_RUN_VARIABLE]: process.env[BENCH_RUN_VARIABLE] ?? String(process.pid) },
    });
    this.child.on('message', (message) => {
      const reader = this.readers.shift();
      if (reader) reader(message);
      else this.inbox.push(message);
    });
    this.child.on('exit', (code) => {
      if (code !== 0) for (const reader of this.readers.splice(0)) reader({ type: 'exit', code });
    });
  }

  send(message: object): void {
    this.child.send(message);
  }

  /** The next message from the process. */
  next<T>(): Promise<T> {
    const queued = this.inbox.shift();
    if (queued !== undefined) return Promise.resolve(queued as T);
    return new Promise((resolve, reject) =>
      this.readers.push((message) => {
        const exit = message as { type: string; code?: number };
        if (exit.type === 'exit') reject(new Error(`Benchmark process ${this.child.pid} exited with code ${exit.code}.`));
        else resolve(message as T);
      }),
    );
  }

  async request<T>(message: object): Promise<T> {
    this.send(message);
    return this.next<T>();
  }

  stop(): Promise<void> {
    return new Promise((resolve) => {
      if (this.child.exitCode !== null || !this.child.connected) return resolve();
      this.child.once('exit', () => resolve());
      this.child.send({ type: 'stop' });
    });
  }
}

/** In a benchmark process: answers each message with what `handle` returns, and exits on `stop`. */
export function serveMessages(handle: (message: { type: string; [key: string]: unknown }) => Promise<object | void>, close: () => Promise<void>): void {
  process.on('message', (message: { type: string; [key: string]: unknown }) => {
    if (message.type === 'stop') {
      void close().then(() => process.exit(0));
      return;
    }
    handle(message).then(
      (reply) => reply && process.send!(reply),
      (error) => {
        console.error(error);
        process.exit(1);
      },
    );
  });
}
