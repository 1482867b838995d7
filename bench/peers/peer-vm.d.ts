// The shape both peers share (sorted-btree-vm.mjs, interval-tree-vm.mjs).

export interface PeerVa {
  readonly addr: number;
  readonly range: number;
  readonly end: number;
  readonly bo: number;
  readonly offset: number;
  vmBo: PeerVmBo | null;
}

export interface PeerVmBo {
  readonly bo: number;
  refcount: number;
  readonly mappings: Set<PeerVa>;
}

export interface PeerPiece {
  addr: number;
  range: number;
  bo: number;
  offset: number;
}

export type PeerOp =
  | ({ kind: 'map' } & PeerPiece)
  | { kind: 'unmap'; va: PeerVa; keep: boolean }
  | { kind: 'remap'; unmap: { va: PeerVa; keep: boolean }; prev: PeerPiece | null; next: PeerPiece | null };

export declare class PeerVm {
  constructor(opts?: { start?: number; range?: number });
  readonly start: number;
  readonly end: number;
  readonly vmBos: Map<number, PeerVmBo>;
  readonly count: number;
  /** applied ops by kind */
  readonly applied: { map: number; remap: number; unmap: number };
  smMapOps(addr: number, range: number, bo: number, offset: number): PeerOp[];
  smUnmapOps(addr: number, range: number): PeerOp[];
  apply(ops: PeerOp[]): void;
  bind(addr: number, range: number, bo: number, offset: number): number;
  unbind(addr: number, range: number): number;
  findBo(bo: number): PeerVmBo | null;
  findFirst(addr: number, range: number): PeerVa | null;
  mappings(): IterableIterator<PeerVa>;
}
