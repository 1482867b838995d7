// xe-style page tables: one 2 MiB leaf, split by a 4 KiB unbind, then
// translated; every mutating call reports what it cost.
// Run: node examples/page-table.mjs
import { PageTable } from 'gpuvm';

const pt = new PageTable(); // 4 KiB / 2 MiB / 1 GiB pages, 48-bit addresses
const hex = (n) => `0x${n.toString(16)}`;

console.log('bind', pt.bind(0x200000, 0x200000, [{ pa: 0x40000000, len: 0x200000 }]));
console.log('translate', hex(pt.translate(0x234567).pa), 'size', hex(pt.translate(0x234567).size));

console.log('unbind', pt.unbind(0x201000, 0x1000));
console.log('hole', pt.translate(0x201000)); // null: nothing mapped there any more
const after = pt.translate(0x234567);
console.log('translate', hex(after.pa), 'size', hex(after.size)); // same frame, now a 4 KiB entry
console.log('stats', pt.stats);
pt.destroy();
