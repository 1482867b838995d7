/**
 * The `gpuvm` command: `gpuvm replay FILE|-` and `gpuvm --version`.
 */
import { createReadStream } from 'node:fs';
import { Command } from 'commander';
import { backendInfo } from './backend/loader.js';
import { packageVersion } from './backend/loader.js';
import { replayStream } from './replay-stream.js';

function versionLine(): string {
  const info = backendInfo();
  const why = info.reason ? ` (native skipped: ${info.reason})` : '';
  return `gpuvm ${packageVersion()} engine=${info.name}${why}`;
}

let version: string;
try {
  version = versionLine();
} catch (err) {
  // GPUVM_BACKEND asked for an engine that cannot load: say why, no stack
  process.stderr.write(`gpuvm: ${(err as Error).message}\n`);
  process.exit(1);
}

const program = new Command();
program
  .name('gpuvm')
  .description("Linux's GPU virtual-memory machinery: replay VM_BIND streams, page-table commands and GPU shared-virtual-memory sessions")
  .version(version, '-v, --version', 'print the version and the active engine');

program
  .command('replay')
  .description('run a replay file, each command as its line arrives; - reads stdin')
  .argument('<file>', 'replay file, or - for stdin')
  .action(async (file: string) => {
    // a reader that stops early (`| head`) ends the run quietly, like other filters
    process.stdout.on('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'EPIPE') process.exit(0);
    });
    const input = file === '-' ? process.stdin : createReadStream(file);
    await replayStream(input, process.stdout);
  });

program.parseAsync(process.argv).catch((err: Error) => {
  process.stderr.write(`gpuvm: ${err.message}\n`);
  process.exitCode = 1;
});
