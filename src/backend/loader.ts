/**
 * Engine selection: GPUVM_BACKEND=auto|native|wasm, default
 * auto. auto tries the native addon, then WASM, and remembers why native was
 * skipped; native or wasm is strict and throws a GpuVmError saying why it
 * cannot load. Each engine is loaded at most once per process.
 */
import { createRequire } from 'node:module';
import { readFileSync, existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { debuglog } from 'node:util';
import { GpuVmError } from '../errors.js';
import { IO, type Engine } from './engine.js';
import { describe } from '../u64.js';

export type BackendName = 'native' | 'wasm';

export interface BackendInfo {
  /** the engine in use */
  readonly name: BackendName;
  /** GPUVM_BACKEND as requested (auto when unset) */
  readonly requested: 'auto' | BackendName;
  /** in auto mode, why native was not used (null when it was) */
  readonly reason: string | null;
}

const log = debuglog('gpuvm');
const engines = new Map<BackendName, Engine>();
const failures = new Map<BackendName, Error>();

/** The package root: the nearest directory above this file with gpuvm's package.json. */
function packageRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const pj = join(dir, 'package.json');
    if (existsSync(pj)) {
      try {
        if (JSON.parse(readFileSync(pj, 'utf8')).name === 'gpuvm') return dir;
      } catch {
        /* keep looking */
      }
    }
    const up = dirname(dir);
    if (up === dir) throw new Error('cannot find the gpuvm package root');
    dir = up;
  }
}

interface NativeAddon {
  setup(io: ArrayBuffer): void;
  [fn: string]: unknown;
}

function loadNative(): Engine {
  const root = packageRoot();
  const file = process.env.GPUVM_NATIVE_PATH ?? join(root, 'build', 'Release', 'gpuvm.node');
  if (!existsSync(file)) {
    throw new Error(`${file} does not exist (the native build did not run or failed; try \`npm rebuild gpuvm\`)`);
  }
  const req = createRequire(import.meta.url);
  const addon = req(file) as NativeAddon & { gpuvmIo?: ArrayBuffer };
  // The addon has one transfer area per JS environment. When two copies of
  // this loader run in one process (the ESM and the CJS build, or a bundled
  // copy), they get the same exports object: share the area set up first
  // instead of pointing the engine at a second one behind the first's back.
  if (addon.gpuvmIo === undefined) {
    const buffer = new ArrayBuffer(IO.WORDS * 4);
    addon.setup(buffer);
    addon.gpuvmIo = buffer;
  }
  const io = new Uint32Array(addon.gpuvmIo);
  return fastEngine(addon, 'native', () => io);
}

function loadWasm(): Engine {
  const root = packageRoot();
  const file = join(root, 'build', 'gpuvm.wasm');
  if (!existsSync(file)) throw new Error(`${file} does not exist (run \`npm run build:wasm\`)`);
  const module = new WebAssembly.Module(readFileSync(file));
  const instance = new WebAssembly.Instance(module, {
    env: {
      abort(_msg: number, _file: number, line: number, col: number) {
        throw new GpuVmError('EIO', `WASM engine aborted at ${line}:${col}`);
      },
    },
  });
  const exports = instance.exports as Record<string, unknown> & { memory: WebAssembly.Memory; ioPtr(): number };
  const memory = exports.memory;
  const ptr = exports.ioPtr() >>> 0;
  let view = new Uint32Array(memory.buffer, ptr, IO.WORDS);
  // A grown memory detaches the old buffer (length 0): re-derive the view then.
  const io = (): Uint32Array => {
    if (view.length === 0) view = new Uint32Array(memory.buffer, ptr, IO.WORDS);
    return view;
  };
  const engine = fastEngine(exports, 'wasm', io);
  (engine as unknown as { memory: WebAssembly.Memory }).memory = memory;
  return engine;
}

/**
 * The engine object the facade calls on every operation. An object that
 * gets this many properties one by one ends up in V8's dictionary mode, where
 * every `engine.bind` is a hash lookup (measured: 11 ns instead of 2 for
 * `io()`); an object literal made by spreading is created with fast
 * properties.
 */
function fastEngine(fns: Record<string, unknown>, name: 'native' | 'wasm', io: () => Uint32Array): Engine {
  const collected: Record<string, unknown> = {};
  for (const k of Object.keys(fns).sort()) {
    if (typeof fns[k] === 'function' && k !== 'setup' && k !== 'gpuvmIo') collected[k] = fns[k];
  }
  return { ...collected, name, io } as unknown as Engine;
}

/** Loads (once) and returns the named engine; throws a GpuVmError saying why it cannot. */
export function loadEngine(name: BackendName): Engine {
  const have = engines.get(name);
  if (have) return have;
  const failed = failures.get(name);
  if (failed) throw new GpuVmError('ENOENT', `the ${name} engine cannot load: ${failed.message}`, { cause: failed });
  try {
    const e = name === 'native' ? loadNative() : loadWasm();
    engines.set(name, e);
    return e;
  } catch (err) {
    const e = err instanceof Error ? err : new Error(String(err));
    failures.set(name, e);
    throw new GpuVmError('ENOENT', `the ${name} engine cannot load: ${e.message}`, { cause: e });
  }
}

/** The engines that load on this machine, native first. */
export function availableBackends(): BackendName[] {
  const out: BackendName[] = [];
  for (const n of ['native', 'wasm'] as const) {
    try {
      loadEngine(n);
      out.push(n);
    } catch {
      /* not available */
    }
  }
  return out;
}

let chosen: { engine: Engine; info: BackendInfo } | null = null;

function requestedBackend(): 'auto' | BackendName {
  const v = (process.env.GPUVM_BACKEND ?? 'auto').trim().toLowerCase();
  if (v === '' || v === 'auto') return 'auto';
  if (v === 'native' || v === 'wasm') return v;
  throw new GpuVmError('EINVAL', `GPUVM_BACKEND must be auto, native or wasm, got ${JSON.stringify(process.env.GPUVM_BACKEND)}`);
}

/** The default engine, chosen by GPUVM_BACKEND. */
export function defaultEngine(): Engine {
  if (chosen) return chosen.engine;
  const requested = requestedBackend();
  if (requested !== 'auto') {
    const engine = loadEngine(requested);
    chosen = { engine, info: { name: requested, requested, reason: null } };
    return engine;
  }
  try {
    const engine = loadEngine('native');
    chosen = { engine, info: { name: 'native', requested, reason: null } };
  } catch (err) {
    const reason = (err as Error).message;
    log('native engine unavailable, using WASM: %s', reason);
    const engine = loadEngine('wasm');
    chosen = { engine, info: { name: 'wasm', requested, reason } };
  }
  return chosen.engine;
}

/** Which engine the library uses by default, and why. */
export function backendInfo(): BackendInfo {
  defaultEngine();
  return chosen!.info;
}

/** The package's version, from its package.json. */
export function packageVersion(): string {
  return JSON.parse(readFileSync(join(packageRoot(), 'package.json'), 'utf8')).version as string;
}

/**
 * An engine by name, or the default one. The one check of a `backend` option
 * (GpuVm, PageTable, engineMemory): anything but 'native', 'wasm' or
 * undefined is a TypeError, never a silent fallback.
 */
export function engineFor(name?: BackendName): Engine {
  if (name === undefined) return defaultEngine();
  if (name !== 'native' && name !== 'wasm') {
    throw new TypeError(`backend must be 'native' or 'wasm', got ${describe(name)}`);
  }
  return loadEngine(name);
}
