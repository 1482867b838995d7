/**
 * The page-table commands of the replay language:
 *
 *   pt [<shift0> <shift1> ...] [leaf=<L>]   new table (default 12 21 30 39, leaf=min(2, top))
 *   ptbind <va> <size> <pa>+<len>[,...] | null
 *   ptunbind <va> <size>
 *   ptzap <va> <size>
 *   translate <va>
 *   ptdump
 *
 * Commands before any `pt` line use the default table. A successful ptbind,
 * ptunbind or ptzap prints its cost line and `ok`; anything refused or
 * malformed prints `err EINVAL` (lastReason says why) and changes nothing. Tables are created in
 * bigint mode so every u64 is exact. lines() and handle() refuse a command
 * they do not know (the GpuVm commands of replay.ts) with null / false.
 */
import type { BackendName } from './backend/loader.js';
import type { Engine } from './backend/engine.js';
import { GpuVmError } from './errors.js';
import { DEFAULT_SHIFTS, PageTable, type PtCost, type PtSegment } from './page-table.js';
import { U64_MAX } from './u64.js';
import { Malformed, parseU64, refusal } from './replay-words.js';

export interface PageTableReplay {
  /**
   * The output lines of one page-table command, produced as it runs (a
   * ptdump is walked in engine-sized pieces, never held whole), or null for
   * a command that is not a page-table command.
   */
  lines(cmd: string, args: string[]): Generator<string, void, undefined> | null;
  /** lines(), collected into `out`; false for a command that is not a page-table command */
  handle(cmd: string, args: string[], out: string[]): boolean;
  /** why the last `err` line was printed: the error's message (null before any) */
  readonly lastReason: string | null;
  /** the current table, for reading (null until a command needed one) */
  table(): PageTable<bigint> | null;
  /** releases the current table */
  close(): void;
}

const COMMANDS = new Set(['pt', 'ptbind', 'ptunbind', 'ptzap', 'translate', 'ptdump']);

function parseSmall(s: string | undefined): number {
  const v = parseU64(s);
  // anything this large is a bad geometry, never a usable shift
  return v > 0xffffffffn ? 0xffffffff : Number(v);
}

function parseBacking(s: string): PtSegment[] | null {
  if (s === 'null') return null;
  return s.split(',').map((part) => {
    const plus = part.split('+');
    if (plus.length !== 2) throw new Malformed(`segment must be <pa>+<len>: ${part}`);
    return [parseU64(plus[0]), parseU64(plus[1])] as const;
  });
}

const hex = (v: bigint | number): string => '0x' + v.toString(16);

function costLine(c: PtCost): string {
  return `pt live=${c.live} new=${c.new} alloc=${c.alloc} free=${c.free} records=${c.records}`;
}

/**
 * The page-table half of a replay session. `engine` is the engine the
 * session runs on (an Engine object or a backend name; default: auto).
 */
export function createPageTableReplay(engine?: Engine | BackendName | null): PageTableReplay {
  const backend: BackendName | undefined =
    typeof engine === 'string' ? engine : engine && typeof engine === 'object' ? engine.name : undefined;
  let table: PageTable<bigint> | null = null;
  let lastReason: string | null = null;

  const current = (): PageTable<bigint> => {
    if (table === null) table = new PageTable<bigint>({ shifts: DEFAULT_SHIFTS, bigint: true, backend });
    return table;
  };

  const arity = (cmd: string, args: string[], n: number) => {
    if (args.length !== n) throw new Malformed(`${cmd} takes ${n} arguments`);
  };

  function* run(cmd: string, args: string[]): Generator<string, void, undefined> {
    switch (cmd) {
      case 'pt': {
        const shifts: number[] = [];
        let leaf: number | undefined;
        for (const a of args) {
          if (a.startsWith('leaf=')) {
            if (leaf !== undefined) throw new Malformed('leaf= given twice');
            leaf = parseSmall(a.slice(5));
          } else {
            if (leaf !== undefined) throw new Malformed('leaf= must come last');
            shifts.push(parseSmall(a));
          }
        }
        const s = shifts.length === 0 ? [...DEFAULT_SHIFTS] : shifts;
        const next = new PageTable<bigint>({ shifts: s, leaf, bigint: true, backend });
        table?.destroy();
        table = next;
        return;
      }
      case 'ptbind': {
        arity(cmd, args, 3);
        const va = parseU64(args[0]);
        const size = parseU64(args[1]);
        const backing = parseBacking(args[2]);
        yield costLine(current().bind(va, size, backing));
        yield 'ok';
        return;
      }
      case 'ptunbind':
      case 'ptzap': {
        arity(cmd, args, 2);
        const va = parseU64(args[0]);
        const size = parseU64(args[1]);
        const t = current();
        yield costLine(cmd === 'ptunbind' ? t.unbind(va, size) : t.zap(va, size));
        yield 'ok';
        return;
      }
      case 'translate': {
        arity(cmd, args, 1);
        const va = parseU64(args[0]);
        const r = current().translate(va);
        if (r === null) yield 'none';
        else yield `pa ${r.pa === null ? 'null' : hex(r.pa)} size=${hex(r.size)} level=${r.level}`;
        return;
      }
      case 'ptdump': {
        arity(cmd, args, 0);
        for (const e of current().walk()) {
          yield `pte ${hex(e.va)} ${hex(e.size)} pa=${e.pa === null ? 'null' : hex(e.pa)} level=${e.level}`;
        }
        return;
      }
    }
  }

  function* guarded(cmd: string, rawArgs: string[]): Generator<string, void, undefined> {
    // tolerate a trailing comment the caller did not strip
    const hash = rawArgs.findIndex((a) => a.startsWith('#'));
    const args = hash >= 0 ? rawArgs.slice(0, hash) : rawArgs;
    try {
      yield* run(cmd, args);
    } catch (err) {
      const r = refusal(err);
      if (r === null) throw err;
      lastReason = r.reason;
      yield `err ${r.code}`;
    }
  }

  return {
    lines(cmd: string, args: string[]): Generator<string, void, undefined> | null {
      return COMMANDS.has(cmd) ? guarded(cmd, args) : null;
    },
    handle(cmd: string, args: string[], out: string[]): boolean {
      if (!COMMANDS.has(cmd)) return false;
      for (const line of guarded(cmd, args)) out.push(line);
      return true;
    },
    get lastReason() {
      return lastReason;
    },
    table: () => table,
    close(): void {
      table?.destroy();
      table = null;
    },
  };
}
