// One seeded stream of GpuVm binds/unbinds and PageTable binds/unbinds/
// translates on one engine, reduced to a digest. Plain JS on the built
// package so that worker threads and child processes can run it as well as
// the test itself. `gpuvm` is the imported package (any copy of it).
export function runStream(gpuvm, backend, seed, steps = 600) {
  let s = seed >>> 0 || 1;
  const rnd = (n) => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return s % n;
  };
  const vm = new gpuvm.GpuVm({ start: 0, range: 2 ** 32, backend });
  const bos = [new gpuvm.Bo({ size: 2 ** 24 }), new gpuvm.Bo({ size: 2 ** 24 })];
  const pt = new gpuvm.PageTable({ backend });
  let h = 2166136261;
  const mix = (v) => {
    const str = String(v);
    for (let i = 0; i < str.length; i++) h = Math.imul(h ^ str.charCodeAt(i), 16777619) >>> 0;
  };
  for (let i = 0; i < steps; i++) {
    const va = rnd(4096) * 0x1000;
    const size = (1 + rnd(64)) * 0x1000;
    switch (rnd(5)) {
      case 0:
        vm.bind(va, size, bos[rnd(2)], rnd(16) * 0x1000);
        break;
      case 1:
        vm.unbind(va, size);
        break;
      case 2:
        mix(JSON.stringify(pt.bind(va, size, rnd(4) === 0 ? null : [[rnd(4096) * 0x1000, size]])));
        break;
      case 3:
        mix(JSON.stringify(pt.unbind(va, size)));
        break;
      default:
        mix(JSON.stringify(pt.translate(va)));
    }
  }
  for (const m of vm.mappings()) mix(`${m.addr}:${m.range}:${m.offset}:${m.bo === null ? -1 : bos.indexOf(m.bo)}`);
  for (const e of pt.walk()) mix(`${e.va}:${e.size}:${e.pa}:${e.kind}`);
  mix(JSON.stringify(pt.stats));
  pt.destroy();
  vm.destroy();
  return h.toString(16);
}
