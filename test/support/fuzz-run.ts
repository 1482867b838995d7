/**
 * Runs fuzz commands on every engine's world at once and checks, after each:
 * - the outcome is a success or a GpuVmError / TypeError / RangeError (or
 *   our own getter's or callback's error), never anything else;
 * - a failed call changed nothing in any VM or page table (callback mode and
 *   loops that mutate as they go excepted: the model checks those);
 * - every engine had the same outcome and ends in the same state;
 * - the model agrees (results, mappings with flags and links, VmBos with
 *   refcounts and link order, evict and extobj lists, op-list states).
 */
import { createHash } from 'node:crypto';
import fc from 'fast-check';
import { cmdArb, cmdStr, exec, expectModel, MODELLED, Models, modelListStates, modelMappings, modelVmBos, worldMappings, worldVmBos, type Cmd, type Outcome } from './fuzz-commands.js';
import { FuzzError } from './fuzz-model.js';
import { FuzzWorld, SHAPES, type Lib } from './fuzz-world.js';

/** Commands whose failure may leave earlier effects in place (the model checks them instead). */
const PARTIAL = new Set<Cmd['t']>(['cb', 'iter', 'ptw', 'pre']);

export class Real {
  readonly worlds: FuzzWorld[];
  private readonly hash = createHash('sha256');
  steps = 0;

  constructor(lib: Lib, backends: readonly ('native' | 'wasm')[]) {
    this.worlds = backends.map((b) => new FuzzWorld(lib, b));
  }

  note(s: string): void {
    this.hash.update(s);
    this.hash.update('\n');
  }

  digest(): string {
    for (const w of this.worlds) this.note(w.snapshot());
    return this.hash.digest('hex').slice(0, 16);
  }

  dispose(): void {
    for (const w of this.worlds) {
      for (const vm of w.vms) vm.destroy();
      for (const pt of w.pts) pt.destroy();
    }
  }
}

function snap(w: FuzzWorld, when: string, c: Cmd): string {
  try {
    return w.snapshot();
  } catch (e) {
    throw new FuzzError(`[${w.backend}] reading the state ${when} ${cmdStr(c)} threw: ${(e as Error).message}`);
  }
}

const plain = (o: Outcome) => JSON.stringify('err' in o ? { err: o.err, code: o.code } : o);

/** One command on every world, with every check. */
export function step(M: Models, R: Real, c: Cmd): void {
  R.steps++;
  const res = R.worlds.map((w) => {
    const before = snap(w, 'before', c);
    const o = exec(w, c);
    const after = snap(w, 'after', c);
    return { w, before, o, after };
  });
  for (const { w, before, o, after } of res) {
    if ('err' in o && o.err.startsWith('OTHER')) throw new FuzzError(`[${w.backend}] ${cmdStr(c)} threw something else than GpuVmError/TypeError/RangeError: ${o.msg}`);
    if ('err' in o && !PARTIAL.has(c.t) && before !== after) {
      throw new FuzzError(`[${w.backend}] ${cmdStr(c)} failed (${o.err} ${o.code ?? ''}: ${o.msg}) but changed the state:\nbefore ${before}\nafter  ${after}`);
    }
  }
  const [first, ...rest] = res;
  for (const r of rest) {
    if (plain(r.o) !== plain(first.o)) throw new FuzzError(`${cmdStr(c)}: ${first.w.backend} ${JSON.stringify(first.o)} but ${r.w.backend} ${JSON.stringify(r.o)}`);
    if (r.after !== first.after) throw new FuzzError(`${cmdStr(c)}: the engines' states differ:\n${first.w.backend} ${first.after}\n${r.w.backend} ${r.after}`);
  }
  R.note(plain(first.o));
  if (MODELLED.has(c.t)) {
    try {
      expectModel(M, c, first.o);
    } catch (e) {
      if (e instanceof FuzzError) throw new FuzzError(`${cmdStr(c)}: ${e.message} (message: ${'msg' in first.o ? first.o.msg : ''})`);
      throw e;
    }
  }
  const w = first.w;
  for (let vm = 0; vm < SHAPES.length; vm++) {
    const got = worldMappings(w, vm).join('\n');
    const want = modelMappings(M, vm).join('\n');
    if (got !== want) throw new FuzzError(`after ${cmdStr(c)}: VM ${SHAPES[vm].name} mappings\n${got}\nmodel\n${want}`);
    const gv = worldVmBos(w, vm);
    const mv = modelVmBos(M, vm);
    if (gv !== mv) throw new FuzzError(`after ${cmdStr(c)}: VM ${SHAPES[vm].name} VmBos\n${gv}\nmodel\n${mv}`);
  }
  const ls = w.lists.map((l) => l.state).join(',');
  const ml = modelListStates(M).join(',');
  if (ls !== ml) throw new FuzzError(`after ${cmdStr(c)}: op-list states ${ls}, model ${ml}`);
}

class FuzzCommand implements fc.Command<Models, Real> {
  constructor(readonly c: Cmd) {}
  check(): boolean {
    return true;
  }
  run(M: Models, R: Real): void {
    step(M, R, this.c);
  }
  toString(): string {
    return cmdStr(this.c);
  }
}

// size 'max': sequences up to `max` commands long (the default size keeps them near 5)
export const commandsArb = (max: number) => fc.commands([cmdArb.map((c) => new FuzzCommand(c))], { maxCommands: max, size: 'max' });

/** The property: any command sequence passes every check on the given engines. */
export function fuzzProperty(lib: Lib, backends: readonly ('native' | 'wasm')[], max: number) {
  return fc.property(commandsArb(max), (cmds) => {
    const R = new Real(lib, backends);
    try {
      fc.modelRun(() => ({ model: new Models(), real: R }), cmds);
    } finally {
      R.dispose();
    }
  });
}

/**
 * Runs `runs` sequences drawn from `seed` on one engine and returns a digest
 * of every outcome and the final states (the same on any thread).
 */
export function digestRun(lib: Lib, backend: 'native' | 'wasm', seed: number, runs: number, max: number): string {
  const seqs = fc.sample(fc.array(cmdArb, { maxLength: max, size: 'max' }), { seed, numRuns: runs });
  const h = createHash('sha256');
  for (const seq of seqs) {
    const R = new Real(lib, [backend]);
    const M = new Models();
    try {
      for (const c of seq) step(M, R, c);
      h.update(R.digest());
    } catch (e) {
      // a finding: the same one on every thread (where it happened and what kind)
      if (!(e instanceof FuzzError)) throw e;
      h.update(`FAIL at ${R.steps}`);
    } finally {
      R.dispose();
    }
  }
  return h.digest('hex').slice(0, 16);
}
