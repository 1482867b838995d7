/**
 * Replay as a stream processor (what `gpuvm replay` runs): input is read
 * piece by piece and each command runs as soon as its line is complete;
 * output goes out in pieces of about OUTPUT_PIECE characters while it is
 * produced, waiting for the writer to drain whenever it asks to. Memory stays
 * bounded by one input piece, one output piece and one engine walk chunk,
 * whatever the length of the input or of a dump. The output is byte for byte
 * what replay(text) returns for the same input.
 */
import { StringDecoder } from 'node:string_decoder';
import type { Writable } from 'node:stream';
import { ReplayRun, type ReplayOptions } from './replay.js';

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

/**
 * Runs the replay text arriving on `input` (strings or UTF-8 bytes, in any
 * split) and writes its output to `output` as it is produced. Resolves when
 * the input ended and every output line was handed to `output` (which is
 * left open); rejects on a read or write error.
 */
export async function replayStream(
  input: AsyncIterable<string | Uint8Array>,
  output: Writable,
  options: ReplayOptions = {},
): Promise<void> {
  const run = new ReplayRun(options);
  const writer = new PieceWriter(output);
  const decoder = new StringDecoder('utf8');
  const drive = async (lines: Iterable<string>) => {
    for (const line of lines) if (writer.line(line)) await writer.flush();
  };
  try {
    for await (const chunk of input) {
      await drive(run.lines(typeof chunk === 'string' ? chunk : decoder.write(chunk)));
      // the next piece of input may be a long way off: show what this one gave
      await writer.flush();
    }
    await drive(run.lines(decoder.end()));
    await drive(run.end());
    await writer.flush();
  } finally {
    run.close();
  }
}
