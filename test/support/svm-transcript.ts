/**
 * Transcripts for the SVM step tests: `> command` lines are the input, the
 * lines after one are the exact output of that command. A transcript is
 * checked command by command through the SVM command set (readable diffs)
 * and as a whole through replay().
 */
import { expect } from 'vitest';
import { replay } from '../../src/replay.js';
import { createSvmReplay } from '../../src/replay-svm.js';
import type { backends } from './engines.js';

/** The setup most step tests start from. */
export const SVM = 'svm 0 0x1000000000 0x20000000 0x200000,0x10000,0x1000';

export function transcript(backend: (typeof backends)[number], text: string): void {
  const cmds: string[] = [];
  const want: string[] = [];
  const outputs: string[] = [];
  const strip = (cmd: string) => {
    const hash = cmd.indexOf('#');
    return (hash >= 0 ? cmd.slice(0, hash) : cmd).trim();
  };
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('//')) continue;
    if (line.startsWith('>')) {
      const cmd = line.slice(1).trim();
      cmds.push(cmd);
      want.push('> ' + strip(cmd));
    } else {
      want.push(line);
      outputs.push(line);
    }
  }
  const got: string[] = [];
  const r = createSvmReplay(backend);
  try {
    for (const cmd of cmds) {
      const text = strip(cmd);
      got.push('> ' + text);
      if (text === '') continue;
      const [w, ...args] = text.split(/\s+/);
      const lines = r.lines(w, args);
      if (lines !== null) got.push(...lines);
    }
  } finally {
    r.close();
  }
  expect(got.join('\n')).toBe(want.join('\n'));
  expect(replay(cmds.join('\n') + '\n', { backend })).toBe(outputs.length ? outputs.join('\n') + '\n' : '');
}
