// Child process: imports two copies of the package (argv[2], argv[3]) whose
// native addon is one file reached through two paths, and uses page tables
// of both interleaved; prints one JSON line per engine.
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
  res[backend] = { a: ra, b: rb, sa: pa.stats, sb: pb.stats, same: a.PageTable === b.PageTable };
}
process.stdout.write(JSON.stringify(res) + '\n');
