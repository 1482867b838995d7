/**
 * Engine selection: GPUVM_BACKEND=auto|native|wasm, default
 * auto. auto tries the native addon, then WASM, and remembers why native was
 * skipped; native or wasm is strict and throws a GpuVmError saying why it
 * cannot load. Each engine is loaded at most once per process.
 *
 * The native addon is looked for in this order, the first that loads wins:
 * GPUVM_NATIVE_PATH (alone, when set); the prebuilt binary shipped for this
 * platform (prebuilds/<platform>-<arch>/, the names prebuildify gives, read
 * by node-gyp-build's rules); a local build (build/Release). The WASM module
 * is embedded in the published build, so it loads wherever the JavaScript
 * does, bundled or not; a source checkout reads build/gpuvm.wasm.
 */
import { createRequire } from 'node:module';
import { readFileSync, existsSync, readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { debuglog } from 'node:util';
import { GpuVmError } from '../errors.js';
import { IO, type Engine } from './engine.js';
import { describe } from '../u64.js';

// Set by the package build (tsup.config.ts): the WASM module as base64 and the
// version. Absent when these sources run directly (tests, a checkout).
declare const __GPUVM_WASM_BASE64__: string | undefined;
declare const __GPUVM_VERSION__: string | undefined;

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

/**
 * The file this code runs from, or null when that says nothing about where
 * the package is. The published entry is CommonJS (__filename); the sources
 * and the CLI bundle are ES modules. In an ES-module bundle of the CommonJS
 * build neither exists, and import.meta is empty there.
 */
function thisFile(): string | null {
  if (typeof __filename === 'string') return __filename;
  try {
    return fileURLToPath(import.meta.url);
  } catch {
    return null;
  }
}

let rootFound: string | null | undefined;

/**
 * The package root: the nearest directory above this file with gpuvm's
 * package.json. null when gpuvm was inlined into an application bundle,
 * whose files sit elsewhere.
 */
function packageRoot(): string | null {
  if (rootFound !== undefined) return rootFound;
  rootFound = null;
  const file = thisFile();
  if (file === null) return null;
  for (let dir = dirname(file); ; ) {
    const pj = join(dir, 'package.json');
    if (existsSync(pj)) {
      try {
        if (JSON.parse(readFileSync(pj, 'utf8')).name === 'gpuvm') return (rootFound = dir);
      } catch {
        /* keep looking */
      }
    }
    const up = dirname(dir);
    if (up === dir) return null;
    dir = up;
  }
}

interface NativeAddon {
  setup(io: ArrayBuffer): void;
  gpuvmIo?: ArrayBuffer;
  [fn: string]: unknown;
}

function listDir(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
}

const platformTag = `${process.platform}-${process.arch}`;
let libcName: string | undefined;
/** The C library, told apart the way node-gyp-build (the install step's check) does. */
function libc(): string {
  libcName ??= process.env.LIBC || (process.platform === 'linux' && existsSync('/etc/alpine-release') ? 'musl' : 'glibc');
  return libcName;
}

/**
 * Whether a file in prebuilds/<platform>-<arch>/ fits this process, by the
 * dot-separated tags in its name as prebuildify writes them and
 * node-gyp-build reads them: `napi` or no ABI tag (N-API, any Node), `abiNN`
 * (one Node ABI), a runtime (`node`), a C library (`glibc`, `musl`); other
 * words (the package name) say nothing. Returns how specific the match is,
 * or -1 when it does not fit.
 */
function prebuildFit(file: string): number {
  const words = file.split('.');
  if (words.pop() !== 'node') return -1;
  let napi = false;
  let abi: string | null = null;
  let specific = 0;
  for (const w of words) {
    if (w === 'napi') napi = true;
    else if (/^abi\d+$/.test(w)) abi = w.slice(3);
    else if (w === 'electron' || w === 'node-webkit') return -1;
    else if (w === 'glibc' || w === 'musl') {
      if (w !== libc()) return -1;
    } else if (w !== 'node') continue;
    specific++;
  }
  if (abi !== null && abi !== process.versions.modules && !napi) return -1;
  return specific;
}

/** The prebuilt binary for this platform, or why there is none. */
function findPrebuild(root: string): { file: string } | { missing: string } {
  const base = join(root, 'prebuilds');
  const dirs = listDir(base);
  // a directory names one platform and one or more architectures (darwin-x64+arm64);
  // one made for this architecture alone comes first
  const fitting = dirs
    .map((d) => ({ d, parts: d.split('-') }))
    .filter(({ parts }) => parts.length === 2 && parts[0] === process.platform && parts[1]!.split('+').includes(process.arch))
    .sort((a, b) => a.parts[1]!.split('+').length - b.parts[1]!.split('+').length);
  if (fitting.length === 0) {
    const have = dirs.length ? `it has ${dirs.join(', ')}` : 'it has none';
    return { missing: `no prebuilt binary for ${platformTag} in ${base} (${have})` };
  }
  const dir = join(base, fitting[0]!.d);
  const files = listDir(dir);
  const best = files
    .map((f) => ({ f, fit: prebuildFit(f) }))
    .filter(({ fit }) => fit >= 0)
    .sort((a, b) => b.fit - a.fit)[0];
  if (!best) return { missing: `no binary in ${dir} fits this system (${libc()}; it has ${files.join(', ') || 'nothing'})` };
  return { file: join(dir, best.f) };
}

/** How to get a native engine, for the end of a reason. */
function nativeFix(root: string): string {
  const logFile = join(root, 'build', 'gpuvm-build.log');
  const lastTry = existsSync(logFile) ? ` (the last compile's output: ${logFile})` : '';
  return (
    `to compile it: \`npm rebuild gpuvm --build-from-source\` in the app (needs python3, make and a C++17 compiler)${lastTry}; ` +
    'GPUVM_BACKEND=wasm picks WASM without trying native'
  );
}

function loadNative(): Engine {
  const override = process.env.GPUVM_NATIVE_PATH;
  if (override !== undefined && override !== '') {
    if (!existsSync(override)) throw new Error(`${override} does not exist (from GPUVM_NATIVE_PATH)`);
    log('native engine: loading %s (GPUVM_NATIVE_PATH)', override);
    return nativeEngine(override);
  }
  const root = packageRoot();
  if (root === null) {
    throw new Error(
      'gpuvm is inlined into a bundle, so its native binary is not next to it: ' +
        'mark gpuvm as external in the bundler (esbuild --external:gpuvm) or set GPUVM_NATIVE_PATH to a gpuvm.node',
    );
  }
  const tried: string[] = [];
  const prebuild = findPrebuild(root);
  if ('file' in prebuild) {
    try {
      log('native engine: loading the prebuilt %s', prebuild.file);
      return nativeEngine(prebuild.file);
    } catch (err) {
      tried.push(`${prebuild.file} failed to load: ${oneLine(err, prebuild.file)}`);
    }
  } else {
    tried.push(prebuild.missing);
  }
  log('native engine: %s', tried[0]);
  const local = join(root, 'build', 'Release', 'gpuvm.node');
  if (existsSync(local)) {
    try {
      log('native engine: loading the local build %s', local);
      return nativeEngine(local);
    } catch (err) {
      tried.push(`${local} failed to load: ${oneLine(err, local)}`);
    }
  } else {
    tried.push(`${local} does not exist`);
  }
  log('native engine: %s', tried[1]);
  throw new Error(`${tried.join('; ')}; ${nativeFix(root)}`);
}

/** The first line of a load error, without the file name the reason already gives. */
function oneLine(err: unknown, file: string): string {
  const line = (err instanceof Error ? err.message : String(err)).split('\n')[0]!;
  return line.startsWith(`${file}: `) ? line.slice(file.length + 2) : line;
}

function nativeEngine(file: string): Engine {
  const addon = createRequire(file)(file) as NativeAddon;
  // Each load of the addon file has its own engine and transfer area. Two
  // copies of this loader that load the same file path (GPUVM_NATIVE_PATH,
  // or a bundled copy pointed at an installed package's binary) get the same
  // exports object, though: share the area set up first instead of pointing
  // the engine at a second one behind the first's back. (test/workers runs
  // two package copies both ways.)
  if (addon.gpuvmIo === undefined) {
    const buffer = new ArrayBuffer(IO.WORDS * 4);
    addon.setup(buffer);
    addon.gpuvmIo = buffer;
  }
  const io = new Uint32Array(addon.gpuvmIo);
  return fastEngine(addon, 'native', io, () => io, undefined);
}

/** The WASM module's bytes: embedded in the package build, from build/ in a checkout. */
function wasmBytes(): Uint8Array<ArrayBuffer> {
  if (typeof __GPUVM_WASM_BASE64__ === 'string') return new Uint8Array(Buffer.from(__GPUVM_WASM_BASE64__, 'base64'));
  const root = packageRoot();
  if (root === null) throw new Error('the WASM module is not embedded in this build and the package root is unknown');
  const file = join(root, 'build', 'gpuvm.wasm');
  // only a source checkout gets here: the published build embeds the module
  if (!existsSync(file)) throw new Error(`${file} does not exist (in a gpuvm checkout: npm run build:wasm)`);
  return new Uint8Array(readFileSync(file));
}

function loadWasm(): Engine {
  const module = new WebAssembly.Module(wasmBytes());
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
  return fastEngine(exports, 'wasm', view, io, memory);
}

/**
 * Every engine call, in the order of the engine object's properties. Both
 * engines' objects are made from this one list (a call an engine lacks is
 * undefined there: only setRing, native only), so they share one hidden
 * class and the facade's property loads stay monomorphic in a process that
 * runs both. test/engine-contract checks that each engine exports exactly
 * these.
 */
export const ENGINE_CALLS = [
  'bind', 'findFirst', 'findFirstBatch', 'iterate', 'madviseOps', 'memSetLimit', 'memStats',
  'opsApply', 'opsDrop', 'opsRead', 'prefetchOps', 'ptApply', 'ptCreate', 'ptDestroy', 'ptStats',
  'ptTranslate', 'ptTranslateBatch', 'ptWalk', 'setRing', 'smMapApply', 'smMapOps', 'smUnmapApply',
  'smUnmapOps', 'spanAssign', 'spanCreate', 'spanDestroy', 'spanFind', 'spanInsert', 'spanList',
  'spanRemove', 'spanSeek', 'spanStats', 'submit', 'txClear', 'txRun', 'txStage', 'unbind', 'vaGet',
  'vaInsert', 'vaLink', 'vaRemove', 'vaSetFlags', 'vaUnlink', 'vmCreate', 'vmDestroy', 'vmStats',
  'vmboCreate', 'vmboGet', 'vmboInfo', 'vmboMappings', 'vmboPut', 'vmboReap', 'vmboUnmapOps',
] as const satisfies readonly (keyof Engine)[];

/**
 * The engine object the facade calls on every operation, made as one object
 * literal: an object that gets this many properties one by one ends up in
 * V8's dictionary mode, where every `engine.bind` is a hash lookup
 * (measured: 11 ns instead of 2 for `io()`).
 */
function fastEngine(
  fns: Record<string, unknown>,
  name: 'native' | 'wasm',
  ioView: Uint32Array,
  io: () => Uint32Array,
  memory: WebAssembly.Memory | undefined,
): Engine {
  const calls: Record<string, unknown> = {};
  for (const k of ENGINE_CALLS) calls[k] = typeof fns[k] === 'function' ? fns[k] : undefined;
  return { ...calls, name, io, ioView, memory } as unknown as Engine;
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
  if (typeof __GPUVM_VERSION__ === 'string') return __GPUVM_VERSION__;
  const root = packageRoot();
  if (root === null) throw new GpuVmError('ENOENT', 'cannot find the gpuvm package root to read its version');
  return JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')).version as string;
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
