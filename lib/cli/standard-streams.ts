import { Writable } from 'node:stream';
import { ExitCode } from './command';

/**
 * The command's standard output and error. A reader that leaves early (`| head -1`) ends the output
 * quietly: what is still to be written is dropped, the command runs to its end (closing its database
 * connection) and exits with `ExitCode.outputClosed`, as a shell reports a command ended by SIGPIPE.
 * Any other failure to write (a full disk) is reported, and the command exits 1. Every text written
 * to standard error goes through `redact` first.
 */
export class StandardStreams {
  readonly output: NodeJS.WritableStream = process.stdout;
  readonly errors: NodeJS.WritableStream;
  private closed = false;
  private failed = false;

  constructor(
    redact: (text: string) => string,
    /** Told of a failure to write the output other than a closed pipe. */
    private readonly onOutputFailure: (error: Error) => void,
  ) {
    this.errors = new Writable({
      decodeStrings: false,
      write: (chunk: string | Buffer, _encoding, done) => {
        process.stderr.write(redact(String(chunk)));
        done();
      },
    });
    process.stdout.on('error', (error) => this.writeFailed(error, process.stdout));
    process.stderr.on('error', (error) => this.writeFailed(error, process.stderr));
  }

  /** The exit code of a command that finished with `code`, given what became of its streams. */
  exitCode(code: number): number {
    if (this.failed) return code === ExitCode.success || code === ExitCode.outputClosed ? ExitCode.failure : code;
    return this.closed && code === ExitCode.success ? ExitCode.outputClosed : code;
  }

  private writeFailed(error: NodeJS.ErrnoException, stream: NodeJS.WriteStream): void {
    if (error.code === 'EPIPE') {
      this.closed = true;
      return;
    }
    // A stream that failed drops later writes with this error: the first error said it all.
    if (error.code === 'ERR_STREAM_DESTROYED') return;
    this.failed = true;
    // Standard error cannot report its own failure.
    if (stream === process.stdout) this.onOutputFailure(error);
  }
}
