import { PeerVm } from './peer-vm.js';
export type { PeerVa, PeerVmBo, PeerOp, PeerPiece } from './peer-vm.js';
export declare class IntervalTreeVm extends PeerVm {}
