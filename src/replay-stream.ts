/**
 * Replay as a stream processor (what `gpuvm replay` runs): input is read
 * piece by piece and each command runs as soon as its line is complete;
 * output goes out in pieces of about OUTPUT_PIECE characters while it is
 * produced, waiting for the writer to drain whenever it asks to. Memory stays
 * bounded by one input piece, one output piece and one engine walk chunk,
 * whatever the length of the input or of a dump. The output is byte for byte
 * what replay(text) returns for the same input; the reason for each `err`
 * line goes to onError, never into the output.
 */
import { StringDecoder } from 'node:string_decoder';
import type { Writable } from 'node:stream';
import { ReplayRun, type ReplayError, type ReplayOptions } from './replay.js';

/** Output is handed to the writer in pieces of about this many characters. */
const OUTPUT_PIECE = 64 * 1024;

/** A writer's state that makes further output pointless or impossible. */
function gone(output: Writable): Error | null {
  if (output.errored) return output.errored;
  if (output.destroyed || output.writableEnded) return new Error('output closed');
  return null;
}

/** Resolves once `output` drained; rejects if it fails or closes first. */
function drained(output: Writable): Promise<void> {
  return new Promise((resolve, reject) => {
    const done = (err?: Error) => {
      output.off('drain', onDrain);
      output.off('error', onError);
      output.off('close', onClose);
      if (err) reject(err);
      else resolve();
    };
    const onDrain = () => done();
    const onError = (err: Error) => done(err);
    const onClose = () => done(gone(output) ?? new Error('output closed'));
    output.on('drain', onDrain);
    output.on('error', onError);
    output.on('close', onClose);
  });
}

class PieceWriter {
  private parts: string[] = [];
  private size = 0;

  constructor(private readonly output: Writable) {}

  /** Queues one output line; true when a piece is full and should go out. */
  line(text: string): boolean {
    this.parts.push(text, '\n');
    this.size += text.length + 1;
    return this.size >= OUTPUT_PIECE;
  }

  /** Hands the queued output to the writer; waits while the writer is full. */
  async flush(): Promise<void> {
    const failed = gone(this.output);
    if (failed) throw failed;
    if (this.size === 0) return;
    const piece = this.parts.join('');
    this.parts = [];
    this.size = 0;
    if (!this.output.write(piece)) await drained(this.output);
  }
}

/** A refused command, where it stands in the input. */
export interface StreamError extends ReplayError {
  /** 1-based input line */
  line: number;
}

export interface ReplayStreamOptions extends ReplayOptions {
  /** told of every `err` line just before it is written (the output does not change) */
  onError?: (error: StreamError) => void;
  /** stop after the first `err` line (it is still written) */
  strict?: boolean;
  /** told after each piece of input: input lines run so far, input bytes read so far */
  onProgress?: (lines: number, bytes: number) => void;
}

export interface ReplayStreamResult {
  /** input lines run */
  lines: number;
  /** refused commands */
  errors: number;
  /** true when `strict` ended the run early */
  stopped: boolean;
}

/**
 * Runs the replay text arriving on `input` (strings or UTF-8 bytes, in any
 * split) and writes its output to `output` as it is produced. Resolves when
 * the input ended (or `strict` met an error) and every output line was
 * handed to `output` (which is left open); rejects on a read or write error.
 */
export async function replayStream(
  input: AsyncIterable<string | Uint8Array>,
  output: Writable,
  options: ReplayStreamOptions = {},
): Promise<ReplayStreamResult> {
  const { onError, strict = false, onProgress } = options;
  const run = new ReplayRun(options);
  const writer = new PieceWriter(output);
  const decoder = new StringDecoder('utf8');
  let seen = 0;
  let stopped = false;
  /** false once strict mode met an error */
  const drive = async (lines: Iterable<string>): Promise<boolean> => {
    for (const line of lines) {
      if (run.errors !== seen) {
        seen = run.errors;
        onError?.({ line: run.lineNumber, ...run.lastError! });
        if (strict) {
          writer.line(line);
          stopped = true;
          return false;
        }
      }
      if (writer.line(line)) await writer.flush();
    }
    return true;
  };
  let bytes = 0;
  try {
    reading: {
      for await (const chunk of input) {
        bytes += typeof chunk === 'string' ? Buffer.byteLength(chunk) : chunk.byteLength;
        if (!(await drive(run.lines(typeof chunk === 'string' ? chunk : decoder.write(chunk))))) break reading;
        // the next piece of input may be a long way off: show what this one gave
        await writer.flush();
        onProgress?.(run.lineNumber, bytes);
      }
      if (!(await drive(run.lines(decoder.end())))) break reading;
      await drive(run.end());
    }
    await writer.flush();
  } finally {
    run.close();
  }
  return { lines: run.lineNumber, errors: run.errors, stopped };
}
