/**
 * The state one VM's objects share: the engine and its handle, the change
 * counters, and the caches that give each engine record one JS object
 * (mappings, VmBos, BOs by id). GpuVm, GpuVa, VmBo and OpList each hold the
 * context of their VM and make their own engine calls through it, so none of
 * them needs a back door into another class. The package does not export it.
 */
import { IO, OP_WORDS, OPS_PER_CHUNK, VA_ATTR_KERNEL, Errno, type Engine, ioOf } from './backend/engine.js';
import { GpuVmError, errnoName } from './errors.js';
import { makeGpuVa, vaHandle, vaSerial, isGpuVa, type GpuVa } from './gpu-va.js';
import type { GpuVm } from './gpuvm.js';
import { LIST_REQ_MAP, mintOpList, newListState, type ListState, type OpList, type OpMapping } from './ops.js';
import { writeMirror, type PageTable, type PtResolve } from './page-table.js';
import { getBig, getNum, hex, putU64, toBig, U64_MAX, describe, type U64 } from './u64.js';
import { boState, isBo, isVmBo, makeVmBo, vmBoHandle, vmBoState, type Bo, type VmBo } from './vm-bo.js';
import { LIST_EVICT, LIST_EXTOBJ, VmBoList } from './vm-bo-list.js';

const D = IO.DATA;
const A = IO.ARG;

/** A page table kept in step with the VM (see GpuVm.attachPageTable). */
export interface Mirror {
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  readonly pt: PageTable<any>;
  readonly resolve: PtResolve;
  readonly keep: boolean;
}

export class VmContext<N extends U64 = U64> {
  /** engine handle; 0 once destroyed */
  h: number;
  /** bumped by every change, so iteration (and a mirrored list apply) can notice */
  mod = 0;
  /** bumped whenever the engine's pending list is replaced */
  listGen = 0;
  /** the page table kept in step, or null */
  mirror: Mirror | null = null;
  /**
   * The GpuVa handed out for each mapping handle (an engine handle with
   * another serial is a new mapping). An array indexed by handle: handles are
   * dense, and a lookup here is a large part of a single findFirst.
   */
  readonly vaCache: (GpuVa<N> | undefined)[] = [];
  /**
   * VmBos of this VM by engine handle (dense, like vaCache; a Map would be
   * reallocated in V8's old generation as VmBos come and go).
   */
  readonly vmBoAt: (VmBo<N> | undefined)[] = [];
  /**
   * BOs the engine may name, by id. A BO the VM stops knowing leaves it
   * only at the next sweep (see #sweep), so that a BO bound and unbound
   * over and over does not add and remove its entry every time.
   */
  readonly boById = new Map<number, Bo>();
  /**
   * Where BOs the VM stopped knowing go, for op lists made before: each list
   * holds the grave current when it was made and resolves its BOs only when
   * an op is read, following the chain to graves buried later.
   */
  grave: Grave = { bos: null, later: null };
  /** BOs of mappings inserted without a VmBo: kept until the VM goes */
  readonly looseBos = new Set<number>();
  readonly extobjList = new VmBoList<N>(LIST_EXTOBJ);
  readonly evictList = new VmBoList<N>(LIST_EVICT);

  /** The generation of the VM's list the engine holds pending (made, not all applied nor dropped), else -1. */
  pendingGen = -1;
  readonly #E: Engine;
  /** Where the engine writes deferred lists' records; null: it cannot, and they come back in DATA */
  readonly #ring: RecordRing | null;
  /** The VM's bounds and kernel node as u32 halves (high, low), for checking a request in ARG. */
  readonly #bounds: number[];

  constructor(
    readonly vm: GpuVm<N>,
    E: Engine,
    h: number,
    readonly name: string,
    readonly bigint: boolean,
    readonly startB: bigint,
    readonly endB: bigint,
    readonly reserveB: { start: bigint; end: bigint } | null,
  ) {
    this.#E = E;
    this.#ring = E.setRing !== undefined ? ringOf(E) : null;
    this.h = h;
    const halves = (v: bigint): number[] => [Number(v >> 32n), Number(v & 0xffff_ffffn)];
    const k = reserveB !== null && reserveB.end > reserveB.start ? reserveB : { start: 0n, end: 0n };
    this.#bounds = [...halves(startB), ...halves(endB), ...halves(k.start), ...halves(k.end)];
    // Rounded, these still compare exactly with any safe integer: a bound
    // above 2^53 - 1 rounds to 2^53 or more. An empty reserve is [0, 0).
    this.startN = Number(startB);
    this.endN = Number(endB);
    this.reserveStartN = reserveB === null ? 0 : Number(reserveB.start);
    this.reserveEndN = reserveB === null ? 0 : Number(reserveB.end);
  }

  /** The VM's bounds and kernel node as numbers, for lookups of a safe-integer address. */
  readonly startN: number;
  readonly endN: number;
  readonly reserveStartN: number;
  readonly reserveEndN: number;

  /**
   * The engine. Every engine call of the facade's objects goes through here,
   * so a deferred op list of this environment is made first, before anything
   * could observe or change what it was made from.
   */
  get E(): Engine {
    if (deferredList !== null) settleDeferred();
    return this.#E;
  }

  // ---- numbers -------------------------------------------------------------

  fromBig(v: bigint): N {
    return (this.bigint ? v : Number(v)) as N;
  }

  /** Reads a u64 result in this VM's number mode. */
  u(io: Uint32Array, i: number, name: string): N {
    return (this.bigint ? getBig(io, i) : getNum(io, i, name)) as N;
  }

  /** a + b in this VM's number mode (for values the engine already checked). */
  add(a: N, b: N): N {
    return (this.bigint ? (a as bigint) + (b as bigint) : (a as number) + (b as number)) as N;
  }

  put(io: Uint32Array, i: number, v: unknown, name: string): void {
    putU64(io, i, v, name, this.bigint);
  }

  // ---- errors --------------------------------------------------------------

  alive(what: string): void {
    if (this.h === 0) throw new GpuVmError('EINVAL', `${what}: the VM ${JSON.stringify(this.name)} was destroyed`);
  }

  /** Why a range is invalid for this VM (zero, overflow, outside, kernel node). */
  explainRange(what: string, addr: U64, range: U64, kernel = true): string {
    const a = toBig(addr);
    const r = toBig(range);
    if (r === 0n) return `${what}: range must not be zero (addr=${hex(a)})`;
    if (a + r > U64_MAX) return `${what}: addr + range overflows u64 (addr=${hex(a)}, range=${hex(r)})`;
    if (a < this.startB || a + r > this.endB) {
      return `${what}: [${hex(a)}, ${hex(a + r)}) is not inside the VM [${hex(this.startB)}, ${hex(this.endB)})`;
    }
    const k = this.reserveB;
    if (kernel && k && a < k.end && k.start < a + r) {
      return `${what}: [${hex(a)}, ${hex(a + r)}) overlaps the kernel-reserved node [${hex(k.start)}, ${hex(k.end)})`;
    }
    return `${what}: the engine refused [${hex(a)}, ${hex(a + r)})`;
  }

  /** Turns a negative engine result into the error to throw. */
  fail(r: number, what: string, addr?: U64, range?: U64, kernel = true): GpuVmError {
    if (this.h === 0) return new GpuVmError('EINVAL', `${what}: the VM ${JSON.stringify(this.name)} was destroyed`);
    const code = errnoName(r);
    if (code === 'EINVAL' && addr !== undefined && range !== undefined) {
      return new GpuVmError(code, this.explainRange(what, addr, range, kernel));
    }
    if (code === 'EBUSY') {
      return new GpuVmError(code, `${what}: an op list of this VM is partly applied; apply or drop it first`);
    }
    if (code === 'EEXIST') {
      const where = addr !== undefined && range !== undefined ? ` [${hex(toBig(addr))}, ${hex(toBig(addr) + toBig(range))})` : '';
      return new GpuVmError(code, `${what}: the range${where} overlaps an existing mapping`);
    }
    return new GpuVmError(code, `${what} failed`);
  }

  // ---- bookkeeping after engine changes -------------------------------------

  /** Releases VmBos the engine destroyed while unlinking mappings (deferred cleanup). */
  reap(): void {
    const E = this.E;
    for (;;) {
      const n = E.vmboReap(this.h);
      if (n <= 0) return;
      const io = ioOf(E);
      for (let i = 0; i < n; i++) {
        const vb = this.vmBoAt[io[D + i]];
        if (vb !== undefined) this.forget(vb);
      }
      if (n < IO.DATA_WORDS) return;
    }
  }

  /** Drops a destroyed VmBo from every list. */
  forget(vb: VmBo<N>): void {
    const st = vmBoState(vb);
    if (!st.live) return;
    const bs = boState(vb.bo);
    st.live = false;
    if (bs.lastVmBo === vb) {
      bs.lastVm = null;
      bs.lastVmBo = null;
    }
    const h = vmBoHandle(vb);
    if (this.vmBoAt[h] === vb) this.vmBoAt[h] = undefined;
    if (st.registered && bs.vmBos.get(this.vm) === vb) bs.vmBos.delete(this.vm);
    if (!st.registered) this.#unregistered.delete(vb);
    this.extobjList.delete(vb);
    this.evictList.delete(vb);
    this.#vmBoCount--;
    if (this.boById.size > 2 * (this.#vmBoCount + this.looseBos.size) + SWEEP_SLACK) this.#sweep();
  }

  /** Live VmBos of this VM (at least the BOs it knows through them). */
  #vmBoCount = 0;

  /**
   * Moves the BOs the VM no longer knows (no live VmBo names them, no
   * mapping without a VmBo has them) out of boById, into one grave. The VM
   * lets boById hold up to about twice the BOs it knows before it does this,
   * so that BOs coming and going change the map in batches, and BOs mapped
   * again soon never leave it.
   */
  #sweep(): void {
    // (not by walking vmBoAt: it is indexed by engine-wide handles, so it can
    // be far longer than this VM's VmBos)
    const held = new Set<Bo>();
    for (const vb of this.#unregistered) held.add(vb.bo);
    const gone: Bo[] = [];
    for (const [id, bo] of this.boById) {
      if (boState(bo).vmBos.get(this.vm) === undefined && !this.looseBos.has(id) && !held.has(bo)) gone.push(bo);
    }
    for (const bo of gone) this.boById.delete(bo.id);
    if (gone.length !== 0) this.bury(gone);
  }

  /** Live VmBos not registered yet (VmBo.create before obtainPrealloc): rare, so a Set. */
  readonly #unregistered = new Set<VmBo<N>>();

  /** The VM's live VmBos (registered ones through the BOs it knows, then unregistered ones). */
  liveVmBos(): VmBo<N>[] {
    const out: VmBo<N>[] = [];
    for (const bo of this.boById.values()) {
      const vb = boState(bo).vmBos.get(this.vm) as VmBo<N> | undefined;
      if (vb !== undefined) out.push(vb);
    }
    for (const vb of this.#unregistered) out.push(vb);
    return out;
  }

  /** The VM went: everything it knew goes into the grave (lists of it stay readable). */
  buryAll(): void {
    this.bury(this.boById.values());
    this.boById.clear();
    this.#unregistered.clear();
    this.#vmBoCount = 0;
    this.looseBos.clear();
  }

  /**
   * Keeps BOs the VM forgets reachable for the lists made so far (which may
   * name them), and starts a new grave for later lists, which cannot.
   */
  bury(bos: Iterable<Bo>): void {
    const g = this.grave;
    const m = (g.bos ??= new Map());
    for (const bo of bos) m.set(bo.id, bo);
    this.grave = g.later = { bos: null, later: null };
  }

  /** After every mutating engine call. */
  changed(io: Uint32Array): void {
    this.mod++;
    if (io[IO.OUT_REAPED] !== 0) this.#forgetReaped(io);
    if (io[IO.OUT_ZOMBIES] !== 0) this.reap();
  }

  /**
   * Drops the VmBos a fused call released itself (see IO.OUT_REAPED), and
   * clears the count: other calls do not write it, and their handles may
   * be reused by then.
   */
  #forgetReaped(io: Uint32Array): void {
    const n = io[IO.OUT_REAPED];
    io[IO.OUT_REAPED] = 0;
    for (let i = 1; i <= n; i++) {
      const vb = this.vmBoAt[io[IO.OUT_REAPED + i]];
      if (vb !== undefined) this.forget(vb);
    }
  }

  // ---- VmBos -----------------------------------------------------------------

  /** A new VmBo with one reference; registered (findable) or not. */
  createVmBo(bo: Bo, register: boolean): VmBo<N> {
    if (!isBo(bo)) throw new TypeError(`bo must be a Bo, got ${describe(bo)}`);
    this.alive('VmBo.create');
    const h = this.E.vmboCreate(this.h, bo.id);
    if (h <= 0) throw this.fail(h < 0 ? h : -Errno.ENOMEM, 'VmBo.create');
    const vb = this.#adopt(bo, h);
    if (register) this.register(vb);
    else this.#unregistered.add(vb);
    return vb;
  }

  /** The VmBo the engine made for a map request (VMBO_MAKE), registered, if it stayed (see OUT_MADE_VMBO). */
  adoptMadeVmBo(bo: Bo, io: Uint32Array): void {
    const h = io[IO.OUT_MADE_VMBO];
    if (h !== 0) this.adoptVmBo(bo, h);
  }

  /** Engine VmBo h of bo, which the engine made for a request (VMBO_MAKE, SUBMIT_MAKE): its object, registered. */
  adoptVmBo(bo: Bo, h: number): void {
    this.register(this.#adopt(bo, h));
  }

  /** The object of engine VmBo h of bo. */
  #adopt(bo: Bo, h: number): VmBo<N> {
    const vb = makeVmBo<N>(this, bo, h);
    this.vmBoAt[h] = vb;
    this.#vmBoCount++;
    this.boById.set(bo.id, bo);
    return vb;
  }

  register(vb: VmBo<N>): void {
    if (this.#unregistered.size !== 0) this.#unregistered.delete(vb);
    vmBoState(vb).registered = true;
    boState(vb.bo).vmBos.set(this.vm, vb);
    if (vb.bo.external(this.vm)) this.extobjList.add(vb);
  }

  checkVmBo(vb: unknown, what: string): VmBo<N> {
    if (!isVmBo(vb)) throw new TypeError(`${what}: expected a VmBo, got ${describe(vb)}`);
    if (vb.vm !== (this.vm as GpuVm<any>)) throw new GpuVmError('EINVAL', `${what}: the VmBo belongs to another VM`); // eslint-disable-line @typescript-eslint/no-explicit-any
    if (!vmBoState(vb).live) throw new GpuVmError('EINVAL', `${what}: the VmBo of ${vb.bo.name} was already destroyed (use after put)`);
    return vb as VmBo<N>;
  }

  /** Drops the creation reference of a temporary VmBo (it stays if a mapping links to it). */
  releaseTemp(vb: VmBo<N>): void {
    const r = this.E.vmboPut(this.h, vmBoHandle(vb));
    if (r === 0) this.forget(vb);
  }

  // ---- mappings ----------------------------------------------------------------

  boOf(id: number): Bo | null {
    if (id === 0) return null;
    const bo = this.boById.get(id);
    if (bo === undefined) throw new GpuVmError('EIO', `engine named BO id ${id} that this VM does not know`);
    return bo;
  }

  /** The BO an op record names, for a list made when `grave` was current (ids are never reused). */
  boSince(grave: Grave, id: number): Bo | null {
    if (id === 0) return null;
    // Ids are never reused, so an id seen once names that Bo for good: a
    // small direct-mapped memo spares reading ops most of the Map lookups.
    const slot = id & (BO_MEMO - 1);
    const ids = this.#memoIds;
    if (ids !== null && ids[slot] === id) return this.#memoBos![slot]!;
    let bo = this.boById.get(id);
    for (let g: Grave | null = grave; bo === undefined && g !== null; g = g.later) bo = g.bos?.get(id);
    if (bo === undefined) throw new GpuVmError('EIO', `engine named BO id ${id} that this VM does not know`);
    if (ids === null) {
      // made on first use, so a VM whose ops are never read pays nothing for it
      this.#memoIds = new Array<number>(BO_MEMO).fill(0);
      this.#memoBos = new Array<Bo | null>(BO_MEMO).fill(null);
    }
    this.#memoIds![slot] = id;
    this.#memoBos![slot] = bo;
    return bo;
  }
  #memoIds: number[] | null = null;
  #memoBos: (Bo | null)[] | null = null;

  /** A GpuVa for a VA record at io[p]. */
  vaFromRecord(io: Uint32Array, p: number): GpuVa<N> {
    const h = io[p];
    const serial = io[p + 1];
    const have = this.vaCache[h];
    if (have !== undefined && vaSerial(have) === serial) return have;
    const va = makeGpuVa<N>(
      this,
      h,
      serial,
      this.u(io, p + 4, 'addr'),
      this.u(io, p + 6, 'range'),
      this.boOf(io[p + 2]),
      this.u(io, p + 8, 'offset'),
      (io[p + 11] & VA_ATTR_KERNEL) !== 0,
    );
    this.cacheVa(h, va);
    return va;
  }

  /** A GpuVa for the mapping an op record at words[p] names. */
  vaFromOp(w: Uint32Array, p: number, bo: Bo | null): GpuVa<N> {
    const h = w[p + 1];
    const serial = w[p + 2];
    const have = this.vaCache[h];
    if (have !== undefined && vaSerial(have) === serial) return have;
    const va = makeGpuVa<N>(this, h, serial, this.u(w, p + 4, 'addr'), this.u(w, p + 6, 'range'), bo, this.u(w, p + 8, 'offset'), false);
    this.cacheVa(h, va);
    return va;
  }

  /** A GpuVa for a mapping just created by an apply or an insert. */
  vaCreated(h: number, serial: number, m: OpMapping<N>): GpuVa<N> {
    const va = makeGpuVa<N>(this, h, serial, m.addr, m.range, m.bo, m.offset, false);
    this.cacheVa(h, va);
    return va;
  }

  /**
   * Drops a mapping the engine released from the identity cache. Only a
   * live mapping can be looked up again, so the entry served nothing more,
   * and keeping it would keep the object alive until the handle is reused:
   * long enough to reach the old generation, where collecting it is dear.
   */
  forgetVa(va: GpuVa<N>): void {
    const h = vaHandle(va);
    if (this.vaCache[h] === va) this.vaCache[h] = undefined;
  }

  /** Grown one slot at a time (never by a jump), so the array stays dense. */
  cacheVa(h: number, va: GpuVa<N>): void {
    const c = this.vaCache;
    while (c.length < h) c.push(undefined);
    c[h] = va;
  }

  checkVa(va: unknown, what: string): GpuVa<N> {
    if (!isGpuVa(va)) throw new TypeError(`${what}: expected a GpuVa, got ${describe(va)}`);
    if (va.vm !== (this.vm as GpuVm<any>)) throw new GpuVmError('EINVAL', `${what}: the mapping belongs to another VM`); // eslint-disable-line @typescript-eslint/no-explicit-any
    return va as GpuVa<N>;
  }

  // ---- the mirror ----------------------------------------------------------------

  /**
   * Writes op records (engine layout) into the attached page table in one
   * table call: resolve runs first, then `check` (which throws if resolve
   * changed what the write relies on), then the write; any failure leaves the
   * table as it was.
   */
  mirrorWrite(words: Uint32Array, bos: readonly (Bo | null)[], what: string, check: () => void): void {
    const m = this.mirror;
    if (m === null) return;
    writeMirror(m.pt, words, bos, m.resolve, m.keep, this.bigint, check, what);
  }

  // ---- op lists ------------------------------------------------------------------

  /**
   * Makes an OpList of the engine's pending list (n ops). `inData`: the first
   * chunk is already in DATA (list generation); otherwise (a finished
   * transaction) everything is read with opsRead. The records are copied
   * (DATA is shared by every engine call, and a replaced list stays
   * readable), but nothing else is made until an op is read: no op objects,
   * no BO lookups.
   */
  takeList(n: number, applied: boolean, inData = true): OpList<N> {
    this.listGen++;
    const io = this.#copyRecords(n, inData);
    const ls = newListState<N>(copied, copiedAt, n, this.listGen, this.mod, applied, this.grave, 0);
    if (ls.state === 'pending') this.pendingGen = ls.gen;
    const list = mintOpList<N>(this, ls);
    // replacing an untouched list released its VmBo reference
    if (io[IO.OUT_ZOMBIES] !== 0) this.reap();
    return list;
  }

  /** Copies the records of the engine's list (n ops) into ls. -> io after */
  #fillList(ls: ListState<N>, n: number, applied: boolean, inData: boolean): Uint32Array {
    const io = this.#copyRecords(n, inData);
    ls.words = copied;
    ls.at = copiedAt;
    ls.length = n;
    ls.state = applied || n === 0 ? 'applied' : 'pending';
    if (ls.state === 'pending') this.pendingGen = ls.gen;
    return io;
  }

  /**
   * Copies the records of the engine's list (n ops; the first chunk in DATA
   * when inData) out of the engine, to copied[copiedAt...]. -> io after
   */
  #copyRecords(n: number, inData: boolean): Uint32Array {
    const io = ioOf(this.#E);
    const len = n * OP_WORDS;
    if (n === 0 || !inData || len > SLAB_WORDS >>> 2) return this.#copyLong(n, inData, io);
    // the common case, kept small so that it inlines: a short list into the shared slab
    if (slabUsed + len > SLAB_WORDS) {
      slab = new Uint32Array(SLAB_WORDS);
      slabUsed = 0;
    }
    copied = slab;
    copiedAt = slabUsed;
    slabUsed += len;
    slab.set(n <= VIEWED_OPS ? recordViews(io)[n] : io.subarray(D, D + len), copiedAt);
    return io;
  }

  /** #copyRecords of an empty list, a long one, or one not in DATA (read with opsRead). */
  #copyLong(n: number, inData: boolean, io: Uint32Array): Uint32Array {
    copiedAt = 0;
    if (n === 0) {
      copied = NO_WORDS;
      return io;
    }
    if (inData && n <= OPS_PER_CHUNK) {
      copied = io.slice(D, D + n * OP_WORDS);
      return io;
    }
    const E = this.#E;
    const words = new Uint32Array(n * OP_WORDS);
    for (let from = 0; from < n; ) {
      const got = E.opsRead(this.h, from);
      if (got <= 0) throw new GpuVmError('EIO', `opsRead returned ${got} at ${from} of ${n}`);
      words.set(ioOf(E).subarray(D, D + got * OP_WORDS), from * OP_WORDS);
      from += got;
    }
    copied = words;
    return ioOf(E);
  }

  // ---- deferred op lists ---------------------------------------------------------
  //
  // Most lists are applied at once and never read. smMapOps / smUnmapOps
  // therefore only check the request and return a deferred list; applying it
  // untouched makes and applies it in one engine call (smMapApply /
  // smUnmapApply, which also hand back its records). Anything else makes it
  // first, exactly as it would have been made when it was asked for: reading
  // it (OpList.length, ops), and any engine call in this environment (the E
  // getter, settleDeferred), since only engine calls change what a list is
  // made from. A list is deferred only when making it could not have failed
  // (the request is valid for the VM, no list of the VM is pending, no page
  // table mirrors the VM, the engine has no memory limit), and not for the
  // VM's next DEFER_BACKOFF lists after one had to be made before it was
  // applied (a user who reads lists would only pay for deferring them). The
  // native engine writes the records where lists keep them (see RecordRing);
  // the WASM engine cannot write outside its memory, so its records come back
  // in DATA and are copied, as those of a list made when asked for: the one
  // engine call still saves the second.

  /** A deferred list of the request in ARG (LIST_REQ_*), or null when it must be made now. */
  deferList(req: number): OpList<N> | null {
    const E = this.#E;
    if (this.#deferSkip !== 0) {
      this.#deferSkip--;
      return null;
    }
    if (this.h === 0 || this.mirror !== null || this.pendingGen === this.listGen) return null;
    if (limitedEngines.size !== 0 && limitedEngines.has(E)) return null;
    const io = ioOf(E);
    if (!this.#argRangeValid(io)) return null;
    for (let i = 0; i < 8; i++) deferredArgs[i] = io[A + i];
    this.listGen++;
    const ls = newListState<N>(NO_WORDS, 0, 0, this.listGen, this.mod, false, this.grave, req);
    deferredCtx = this;
    deferredList = ls;
    return mintOpList<N>(this, ls);
  }

  /** The engine's range check of the request in ARG (zero, overflow, outside the VM, kernel node). */
  #argRangeValid(io: Uint32Array): boolean {
    const aLo = io[A];
    const aHi = io[A + 1];
    const rLo = io[A + 2];
    const rHi = io[A + 3];
    if ((rLo | rHi) === 0) return false;
    let eLo = aLo + rLo;
    let eHi = aHi + rHi;
    if (eLo > 0xffff_ffff) {
      eLo -= 0x1_0000_0000;
      eHi += 1;
    }
    if (eHi > 0xffff_ffff) return false; // wraps, or ends exactly at 2^64
    const b = this.#bounds;
    if (aHi < b[0] || (aHi === b[0] && aLo < b[1])) return false; // below the VM
    if (eHi > b[2] || (eHi === b[2] && eLo > b[3])) return false; // past its end
    // overlaps the kernel node [b4:b5, b6:b7) (empty: 0, 0)
    const beforeKEnd = aHi < b[6] || (aHi === b[6] && aLo < b[7]);
    const kStartBefore = b[4] < eHi || (b[4] === eHi && b[5] < eLo);
    return !(beforeKEnd && kStartBefore);
  }

  /** Makes the environment's deferred list now (see deferList). */
  settleDeferred(): void {
    settleDeferred();
  }

  /**
   * Lists to make when asked for before deferring again: a deferred list that
   * had to be made anyway (read, or something ran before it was applied) only
   * added work, and the VM's next lists likely go the same way.
   */
  #deferSkip = 0;

  /** Makes deferred list ls in the engine, as its smMapOps / smUnmapOps would have when it was asked for. */
  makeDeferred(ls: ListState<N>): void {
    this.#deferSkip = DEFER_BACKOFF;
    const E = this.#E;
    const io = ioOf(E);
    for (let i = 0; i < 8; i++) io[A + i] = deferredArgs[i];
    const req = ls.req;
    ls.req = 0;
    const n = req === LIST_REQ_MAP ? E.smMapOps(this.h) : E.smUnmapOps(this.h);
    if (n < 0) {
      // it was checked when asked for: only a platform without memory gets here
      ls.state = 'dropped';
      this.pendingGen = -1;
      ls.error = this.fail(n, req === LIST_REQ_MAP ? 'smMapOps' : 'smUnmapOps');
      return;
    }
    const after = this.#fillList(ls, n, false, true);
    if (after[IO.OUT_ZOMBIES] !== 0) this.reap();
  }

  /** Makes and applies deferred list ls in one engine call; the list keeps its records. */
  applyDeferred(ls: ListState<N>): void {
    deferredCtx = null;
    deferredList = null;
    const E = this.#E;
    const ring = this.#ring;
    const slab = ring === null ? null : ring.slab();
    let io = ioOf(E);
    const at = ring === null ? 0 : ring.used;
    for (let i = 0; i < 8; i++) io[A + i] = deferredArgs[i];
    io[A + 8] = at;
    io[A + 9] = slab === null ? 0 : RING_WORDS - at;
    const req = ls.req;
    ls.req = 0;
    const n = req === LIST_REQ_MAP ? E.smMapApply(this.h) : E.smUnmapApply(this.h);
    if (n < 0) {
      ls.state = 'dropped';
      ls.error = this.fail(n, 'OpList.apply');
      throw ls.error;
    }
    if (slab !== null && n * OP_WORDS <= RING_WORDS - at) {
      // the records are in the slab already
      io = ioOf(E);
      ls.words = slab;
      ls.at = at;
      ls.length = n;
      ls.state = 'applied';
      (ring as RecordRing).used = at + n * OP_WORDS;
    } else {
      io = this.#fillList(ls, n, true, true);
    }
    ls.next = n;
    this.changed(io);
  }
}

/**
 * The environment's deferred list and its VM (at most one: see
 * VmContext.deferList), and its request's ARG words as they were written
 * (calls of other engine parts, page tables, reuse ARG meanwhile).
 */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
let deferredCtx: VmContext<any> | null = null;
// eslint-disable-next-line @typescript-eslint/no-explicit-any
let deferredList: ListState<any> | null = null;
const deferredArgs = new Uint32Array(8);
/** VmContext.#deferSkip after a deferred list had to be made before it was applied. */
export const DEFER_BACKOFF = 64;

/** Makes the environment's deferred list, if there is one. Engine calls made outside a VM's context call this first. */
export function settleDeferred(): void {
  const ctx = deferredCtx;
  const ls = deferredList;
  if (ctx === null || ls === null) return;
  deferredCtx = null;
  deferredList = null;
  ctx.makeDeferred(ls);
}

/**
 * Where the native engine writes the records of deferred lists it makes and
 * applies (smMapApply / smUnmapApply): a slab of this environment's, handed
 * to the engine once (setRing), that lists written there keep referencing.
 * A full slab is replaced by a new one, so records are never copied.
 */
class RecordRing {
  used = 0;
  #words: Uint32Array | null = null;
  readonly #E: Engine;
  constructor(E: Engine) {
    this.#E = E;
  }
  /** The slab with room for one more list's records (a new one when this one is nearly full), or null (refused). */
  slab(): Uint32Array | null {
    const words = this.#words;
    if (words !== null && this.used <= RING_WORDS - RING_SLACK) return words;
    const E = this.#E;
    const next = new Uint32Array(RING_WORDS);
    if (E.setRing === undefined || E.setRing(next.buffer) !== 0) return null;
    this.#words = next;
    this.used = 0;
    return next;
  }
}
/** Words in a record slab (4096 records), and the room a list may need without starting a new one (64 records). */
const RING_WORDS = 1 << 16;
const RING_SLACK = 64 * OP_WORDS;
const rings = new Map<Engine, RecordRing>();
function ringOf(E: Engine): RecordRing {
  let r = rings.get(E);
  if (r === undefined) {
    r = new RecordRing(E);
    rings.set(E, r);
  }
  return r;
}

/** Engines with a memory limit: their lists are made when asked for (making one may fail there). */
const limitedEngines = new Set<Engine>();
export function noteEngineLimit(E: Engine, limited: boolean): void {
  if (limited) limitedEngines.add(E);
  else limitedEngines.delete(E);
}

/** BOs forgotten after the lists holding this grave were made; `later` is the next grave. */
export interface Grave {
  bos: Map<number, Bo> | null;
  later: Grave | null;
}

const NO_WORDS = new Uint32Array(0);
/** BOs boById may hold beyond twice those the VM knows before VmContext sweeps it. */
const SWEEP_SLACK = 64;
/** Entries of VmContext.boSince's memo (a power of two; at most this many Bos stay referenced by it). */
const BO_MEMO = 64;
/**
 * Records of small lists share a slab (a list keeps the slab and its offset):
 * a typed array per list, even a subarray, costs more than the copy. A slab
 * is replaced when used up and goes with its last list.
 */
const SLAB_WORDS = 1 << 16;
let slab = new Uint32Array(SLAB_WORDS);
let slabUsed = 0;
/** Where VmContext's last record copy went (results of #copyRecords, so that it allocates nothing). */
let copied = NO_WORDS;
let copiedAt = 0;

/**
 * Views of the first n records in DATA, for lists of up to VIEWED_OPS ops:
 * one `set` from a ready view copies a short list several times faster than
 * a loop over the words or a fresh subarray. Made again when io changes (a
 * WASM memory that grew, another engine).
 */
const VIEWED_OPS = 16;
let viewsOf: Uint32Array | null = null;
let views: Uint32Array[] = [];
function recordViews(io: Uint32Array): Uint32Array[] {
  if (io !== viewsOf) {
    views = [];
    for (let n = 0; n <= VIEWED_OPS; n++) views.push(io.subarray(D, D + n * OP_WORDS));
    viewsOf = io;
  }
  return views;
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
let contextOf: (x: unknown) => VmContext<any> | undefined = () => undefined;
/** gpuvm.ts installs the lookup (a GpuVm's context is a private field). */
export function setContextLookup(f: (x: unknown) => VmContext<any> | undefined): void { // eslint-disable-line @typescript-eslint/no-explicit-any
  contextOf = f;
}
/** The context of a GpuVm, or undefined for anything else (a brand check). */
export function vmContext<N extends U64>(vm: unknown): VmContext<N> | undefined {
  return contextOf(vm) as VmContext<N> | undefined;
}
