#!/usr/bin/env node
// ONNX Runtime (CPU execution provider) side of benchmarks/ref_vs_ort.sh: times one batch of
// deterministic inputs with the same shape and thread count as `anvil bench`; prints one JSON line.
// usage: NODE_PATH=<dir with onnxruntime-node> ort_bench.js MODEL.onnx '[100,1,28,28]' REPEAT THREADS
const ort = require('onnxruntime-node');
const [model, dimsArg, repeatArg, threadsArg] = process.argv.slice(2);
const dims = JSON.parse(dimsArg), repeat = +repeatArg, threads = +threadsArg;
(async () => {
  const s = await ort.InferenceSession.create(model, { intraOpNumThreads: threads, interOpNumThreads: 1,
                                                       graphOptimizationLevel: 'all' });
  const n = dims.reduce((a, b) => a * b, 1);
  const x = new Float32Array(n);
  let seed = 1;
  for (let i = 0; i < n; i++) { seed = (seed * 1103515245 + 12345) >>> 0; x[i] = (seed / 4294967296) * 2 - 1; }
  const feeds = { [s.inputNames[0]]: new ort.Tensor('float32', x, dims) };
  await s.run(feeds);  // warm-up
  const ms = [];
  for (let r = 0; r < repeat; r++) {
    const t0 = process.hrtime.bigint();
    await s.run(feeds);
    ms.push(Number(process.hrtime.bigint() - t0) / 1e6);
  }
  ms.sort((a, b) => a - b);
  console.log(JSON.stringify({ model, batch: dims[0], threads, ms_median: ms[Math.floor(ms.length / 2)], ms_min: ms[0],
                               peak_rss_mb: process.memoryUsage().rss / 1048576 }));
})().catch(e => { console.error(String(e)); process.exit(1); });
