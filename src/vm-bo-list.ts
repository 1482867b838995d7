/**
 * An ordered list of some of a VM's VmBos (its external objects, its evicted
 * ones): members stay in the order they came, and adding or removing one
 * neither searches nor allocates. A Set would keep the same order, but V8
 * reallocates the table of a long-lived Set that empties or fills with holes
 * in its old generation, and a BO bound and unbound over and over joins and
 * leaves these lists every time. The links live in each VmBo's state, one
 * pair per list (its `slot`).
 */
import { vmBoState, type VmBo } from './vm-bo.js';
import type { U64 } from './u64.js';

/** Which of a VmBo's link pairs a list uses. */
export const LIST_EXTOBJ = 0;
export const LIST_EVICT = 1;

export class VmBoList<N extends U64> {
  #head: VmBo<N> | null = null;
  #tail: VmBo<N> | null = null;

  constructor(readonly slot: typeof LIST_EXTOBJ | typeof LIST_EVICT) {}

  has(vb: VmBo<N>): boolean {
    return vmBoState(vb).links[this.slot] !== null;
  }

  /** Appends vb unless it is on the list already (then it keeps its place). */
  add(vb: VmBo<N>): void {
    const links = vmBoState(vb).links;
    if (links[this.slot] !== null) return;
    const tail = this.#tail;
    links[this.slot] = { prev: tail, next: null };
    if (tail === null) this.#head = vb;
    else (vmBoState(tail).links[this.slot] as VmBoLink).next = vb;
    this.#tail = vb;
  }

  delete(vb: VmBo<N>): void {
    const links = vmBoState(vb).links;
    const l = links[this.slot];
    if (l === null) return;
    if (l.prev === null) this.#head = l.next as VmBo<N> | null;
    else (vmBoState(l.prev).links[this.slot] as VmBoLink).next = l.next;
    if (l.next === null) this.#tail = l.prev as VmBo<N> | null;
    else (vmBoState(l.next).links[this.slot] as VmBoLink).prev = l.prev;
    links[this.slot] = null;
  }

  clear(): void {
    for (let vb = this.#head; vb !== null; ) {
      const links = vmBoState(vb).links;
      const next = (links[this.slot] as VmBoLink).next as VmBo<N> | null;
      links[this.slot] = null;
      vb = next;
    }
    this.#head = this.#tail = null;
  }

  /** The members, oldest first (a copy: the caller may change the list while it walks it). */
  toArray(): VmBo<N>[] {
    const out: VmBo<N>[] = [];
    for (let vb = this.#head; vb !== null; vb = (vmBoState(vb).links[this.slot] as VmBoLink).next as VmBo<N> | null) out.push(vb);
    return out;
  }
}

/** A VmBo's place in one VmBoList. */
export interface VmBoLink {
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  prev: VmBo<any> | null;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  next: VmBo<any> | null;
}
