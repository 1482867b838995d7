// Child process: imports two copies of the package (argv[2], argv[3]) whose
// native addon is one file reached through two paths, and uses page tables
// of both interleaved, and VMs of both with op lists left unread in between;
// prints one JSON line per engine.
const [a, b] = [await import(process.argv[2]), await import(process.argv[3])];
const res = {};
for (const backend of JSON.parse(process.argv[4])) {
  const pa = new a.PageTable({ backend });
  const pb = new b.PageTable({ backend });
  const ra = [];
  const rb = [];
  for (let i = 0; i < 64; i++) {
    pa.bind(i * 0x10000, 0x1000, [[0x100000 + i * 0x1000, 0x1000]]);
    pb.bind(i * 0x10000, 0x2000, [[0x900000 + i * 0x2000, 0x2000]]);
    ra.push(pa.translate(i * 0x10000)?.pa ?? null);
    rb.push(pb.translate(i * 0x10000 + 0x1000)?.pa ?? null);
    if (i % 8 === 7) pa.unbind(i * 0x10000, 0x1000);
  }
  // op lists left unread wait to be made when applied (their request stays in the
  // transfer area, which both copies share on the native engine): each copy's
  // calls in between must not change what the other's list makes
  const va = new a.GpuVm({ start: 0, range: 2 ** 32, backend });
  const vb = new b.GpuVm({ start: 0, range: 2 ** 32, backend });
  const boA = new a.Bo({ size: 2 ** 24 });
  const boB = new b.Bo({ size: 2 ** 24 });
  va.bind(0x1000, 0x1000, boA, 0);
  vb.bind(0x1000, 0x1000, boB, 0);
  for (let i = 1; i <= 16; i++) {
    const la = va.smMapOps({ addr: 0x10000 * i, range: 0x3000, bo: boA, offset: 0x1000 * i });
    vb.smMapOps({ addr: 0x20000 * i, range: 0x5000, bo: boB, offset: 0x2000 * i }).apply();
    vb.unbind(0x20000 * i + 0x1000, 0x1000);
    la.apply();
  }
  const maps = (vm) => [...vm].map((m) => [m.addr, m.range, m.offset]);
  res[backend] = { a: ra, b: rb, sa: pa.stats, sb: pb.stats, same: a.PageTable === b.PageTable, ma: maps(va), mb: maps(vb) };
}
process.stdout.write(JSON.stringify(res) + '\n');
