/**
 * `npm start`: three instances of the sample on this host, on ports 3000 to 3002, sharing one lock
 * table (the SQLite file, or DATABASE_URL). Each line they print is prefixed with the instance's
 * name. Ctrl-C stops them all (a second Ctrl-C kills them); `kill -INT <pid>` stops one, and the others go on.
 */
import { ChildProcess, fork } from 'node:child_process';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import type { Readable, Writable } from 'node:stream';

const INSTANCES = 3;
const FIRST_PORT = 3000;

const running = new Map<string, ChildProcess>();
let stopping = false;

function prefixLines(from: Readable, name: string, to: Writable): void {
  createInterface({ input: from }).on('line', (line) => to.write(`${name} | ${line}\n`));
}

function stop(signal: NodeJS.Signals): void {
  const force = stopping;
  stopping = true;
  for (const child of running.values()) child.kill(force ? 'SIGKILL' : signal);
}

for (let index = 1; index <= INSTANCES; index++) {
  const name = `instance-${index}`;
  const child = fork(join(__dirname, 'main.js'), {
    env: { ...process.env, INSTANCE_NAME: name, PORT: String(FIRST_PORT + index - 1) },
    stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
  });
  prefixLines(child.stdout!, name, process.stdout);
  prefixLines(child.stderr!, name, process.stderr);
  console.log(`${name} | started as pid ${child.pid}, on port ${FIRST_PORT + index - 1}`);
  child.on('exit', (code, signal) => {
    running.delete(name);
    if (stopping && running.size === 0) console.log('all instances stopped');
    if (!stopping && (code === 0 || signal === 'SIGINT' || signal === 'SIGTERM')) {
      // Stopped on its own (`kill -INT <pid>`): the others go on, and one of them takes over its leadership.
      console.log(`${name} stopped; the other instances go on.`);
    } else if (!stopping) {
      // One instance failing (a port in use, say) stops the cluster, rather than leave it half up.
      console.error(`${name} stopped (${signal ?? `exit code ${code}`}); stopping the others.`);
      process.exitCode = 1;
      stop('SIGTERM');
    }
  });
  running.set(name, child);
}

process.on('SIGINT', () => stop('SIGINT'));
process.on('SIGTERM', () => stop('SIGTERM'));
