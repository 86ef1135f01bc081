#!/usr/bin/env node
// Node side of benchmarks/int8_vs_ort.sh and int8_vs_ort_layers.sh (read their headers first). Subcommands:
//
//   inputs DATASET_DIR N BATCH MEAN STD DIR
//       writes the first N Fashion-MNIST test images, normalised as (pixel/255 - MEAN)/STD, as
//       float32 .npy files DIR/x_0000.npy, DIR/x_0001.npy, ... of BATCH images each (C order,
//       N x 1 x 28 x 28). The last file is filled up to BATCH with copies of its own first image;
//       `compare` ignores those rows.
//   compare QDQ.onnx N INPUT_DIR OUTPUT_DIR THREADS PROGRAM_SCALE PROGRAM_ZERO_POINT
//       runs QDQ.onnx under ONNX Runtime (CPU, graphOptimizationLevel 'disabled') on INPUT_DIR/x_K.npy,
//       reads `anvil run`'s int8 outputs OUTPUT_DIR/y_K.npy, prints one JSON line of agreement counts.
//   report RESULTS.jsonl [JSON_OUT]
//       prints the Markdown table and one verdict line per model; writes JSON_OUT when given.
//   layers-ort QDQ.onnx INPUT_DIR WORK_DIR THREADS, layers-report QDQ.onnx N WORK_DIR STATUS.tsv [JSON_OUT]
//       int8_vs_ort_layers.sh's cut models, ORT runs and table (described where they are defined, below).
//
// ORT's int8 output: the model's output is y = (q - zp) * scale, computed by its final
// DequantizeLinear. scale and zp are read from the .onnx itself (onnxruntime-node exposes no
// initializers, so readOutputDequantize() below walks the protobuf), and q = round(y / scale) + zp.
// That recovery is exact: |q - zp| <= 255 and y carries a float32 relative error of at most 2^-24,
// far under the 0.5 that rounding tolerates. The program's own output scale and zero point (printed
// by `anvil disasm`, passed in by the driver) must match them, or the two int8 tensors would not be
// on the same grid and the comparison is refused.
'use strict';
const fs = require('fs'), zlib = require('zlib'), path = require('path');

function fail(msg) { console.error(`int8_vs_ort.js: ${msg}`); process.exit(1); }

// ---- .npy (format 1.0, C order; float32 '<f4' and int8 '|i1') ----
const NPY_DTYPES = { '<f4': Float32Array, '|i1': Int8Array };

function writeNpy(file, typed, shape) {
  const descr = Object.keys(NPY_DTYPES).find(d => typed instanceof NPY_DTYPES[d]);
  let header = `{'descr': '${descr}', 'fortran_order': False, 'shape': (${shape.join(', ')}${shape.length === 1 ? ',' : ''}), }`;
  header += ' '.repeat(63 - (10 + header.length) % 64) + '\n';  // magic+version+length+header: a multiple of 64 bytes
  const pre = Buffer.alloc(10);
  pre.write('\x93NUMPY', 0, 'latin1'); pre[6] = 1; pre[7] = 0; pre.writeUInt16LE(header.length, 8);
  fs.writeFileSync(file, Buffer.concat([pre, Buffer.from(header, 'latin1'),
                                        Buffer.from(typed.buffer, typed.byteOffset, typed.byteLength)]));
}

function readNpy(file) {
  const buf = fs.readFileSync(file);
  if (buf.toString('latin1', 0, 6) !== '\x93NUMPY') fail(`${file}: not a .npy file`);
  const major = buf[6], len = major === 1 ? buf.readUInt16LE(8) : buf.readUInt32LE(8), start = major === 1 ? 10 : 12;
  const header = buf.toString('latin1', start, start + len);
  const descr = /'descr':\s*'([^']+)'/.exec(header)[1];
  if (!NPY_DTYPES[descr]) fail(`${file}: dtype ${descr} (only <f4 and |i1 are read)`);
  if (/'fortran_order':\s*True/.test(header)) fail(`${file}: Fortran order`);
  const shape = /'shape':\s*\(([^)]*)\)/.exec(header)[1].split(',').filter(s => s.trim()).map(Number);
  const data = buf.subarray(start + len), T = NPY_DTYPES[descr];
  const copy = new Uint8Array(data.length); copy.set(data);  // aligned for the typed view
  return { data: new T(copy.buffer, 0, data.length / T.BYTES_PER_ELEMENT), shape };
}

// ---- just enough of the ONNX protobuf to find the output's DequantizeLinear ----
// ModelProto.graph = 7; GraphProto: node = 1, initializer = 5, output = 12; NodeProto: input = 1,
// output = 2, op_type = 4, attribute = 5; AttributeProto: name = 1, t = 5; ValueInfoProto.name = 1;
// TensorProto: dims = 1, data_type = 2 (1 float, 2 uint8, 3 int8), float_data = 4, int32_data = 5,
// name = 8, raw_data = 9.
function varint(buf, p) {
  let v = 0, mul = 1, b;
  do { b = buf[p++]; v += (b & 0x7f) * mul; mul *= 128; } while (b & 0x80);
  return [v, p];
}

function fields(buf) {  // [[field number, wire type, value (number or Buffer), the field's bytes], ...]
  const out = [];
  for (let p = 0; p < buf.length;) {
    const start = p;
    let key, v; [key, p] = varint(buf, p);
    const f = Math.floor(key / 8), wt = key & 7;
    if (wt === 0) [v, p] = varint(buf, p);
    else if (wt === 1) { v = buf.subarray(p, p + 8); p += 8; }
    else if (wt === 2) { let n; [n, p] = varint(buf, p); v = buf.subarray(p, p + n); p += n; }
    else if (wt === 5) { v = buf.subarray(p, p + 4); p += 4; }
    else throw new Error(`unsupported protobuf wire type ${wt}`);
    out.push([f, wt, v, buf.subarray(start, p)]);
  }
  return out;
}


const str = b => b.toString('utf8');

function tensorScalar(tb, what) {  // the one value of a scalar TensorProto, as a number
  let type = 1, raw = null, elems = 1;
  const vals = [];
  const packed = (wt, v) => {  // a repeated varint field, packed or not
    if (wt === 0) return [v];
    const xs = [];
    for (let p = 0; p < v.length;) { let x; [x, p] = varint(v, p); xs.push(x); }
    return xs;
  };
  for (const [f, wt, v] of fields(tb)) {
    if (f === 1) for (const d of packed(wt, v)) elems *= d;
    else if (f === 2) type = v;
    else if (f === 9) raw = v;
    else if (f === 4) { if (wt === 5) vals.push(v.readFloatLE(0)); else for (let i = 0; i < v.length; i += 4) vals.push(v.readFloatLE(i)); }
    else if (f === 5) vals.push(...packed(wt, v));
  }
  if (raw) {
    if (type === 1) for (let i = 0; i < raw.length; i += 4) vals.push(raw.readFloatLE(i));
    else if (type === 2) vals.push(...raw);
    else if (type === 3) vals.push(...new Int8Array(raw.buffer, raw.byteOffset, raw.length));
    else throw new Error(`${what}: tensor data type ${type}`);
  } else if (type === 3) for (let i = 0; i < vals.length; i++) vals[i] = vals[i] << 24 >> 24;  // int32_data holds int8 sign-extended
  if (vals.length !== 1 || elems !== 1) throw new Error(`${what} has ${vals.length} values (only per-tensor output quantization is compared)`);
  return vals[0];
}

// The graph of MODEL: its nodes in file order ({inputs, outputs, op, raw}), producer and constant maps,
// the first graph input and output names, and the graph's top-level fields (for writing cut models).
function parseGraph(modelFile) {
  const top = fields(fs.readFileSync(modelFile)), graph = top.find(([f]) => f === 7);
  if (!graph) throw new Error(`${modelFile}: no graph`);
  const g = { file: modelFile, top, fields: fields(graph[2]), nodes: [], consts: new Map(), producer: new Map(),
              input: null, output: null };
  for (const [f, , v, raw] of g.fields) {
    if (f === 5) { const name = fields(v).find(([h]) => h === 8); if (name) g.consts.set(str(name[2]), v); }
    if (f === 11 && g.input === null) g.input = str(fields(v).find(([h]) => h === 1)[2]);
    if (f === 12 && g.output === null) g.output = str(fields(v).find(([h]) => h === 1)[2]);
    if (f === 1) {
      const node = { inputs: [], outputs: [], op: '', attrs: [], raw };
      for (const [h, , w] of fields(v)) {
        if (h === 1) node.inputs.push(str(w)); else if (h === 2) node.outputs.push(str(w));
        else if (h === 4) node.op = str(w); else if (h === 5) node.attrs.push(fields(w));
      }
      for (const o of node.outputs) g.producer.set(o, node);
      g.nodes.push(node);
      if (node.op === 'Constant') {
        const t = node.attrs.find(a => a.some(([h, , w]) => h === 1 && str(w) === 'value'));
        if (t) g.consts.set(node.outputs[0], t.find(([h]) => h === 5)[2]);
      }
    }
  }
  return g;
}

// scale and zero point of the DequantizeLinear that computes TENSOR (per-tensor constants only)
function dequantizeGrid(g, tensor) {
  const dq = g.producer.get(tensor);
  if (!dq || dq.op !== 'DequantizeLinear')
    throw new Error(`${g.file}: '${tensor}' is computed by ${dq ? dq.op : 'no node'}, not DequantizeLinear`);
  const value = name => {
    if (!g.consts.has(name)) throw new Error(`${g.file}: '${name}' of the DequantizeLinear of '${tensor}' is not a constant`);
    return tensorScalar(g.consts.get(name), `${g.file}: '${name}'`);
  };
  return { scale: value(dq.inputs[1]), zeroPoint: dq.inputs[2] ? value(dq.inputs[2]) : 0 };
}

function readOutputDequantize(modelFile) {
  const g = parseGraph(modelFile);
  return { output: g.output, ...dequantizeGrid(g, g.output) };
}

// Adds the steps between ORT's int8 Q and anvil's int8 A on their first N elements to the counts R.
function countSteps(r, q, a, n) {
  for (let e = 0; e < n; e++) {
    const d = Math.abs(q[e] - a[e]);
    r.elements++; if (d === 0) r.equal++; else if (d === 1) r.one_step++; else r.over_one_step++;
    r.max_steps = Math.max(r.max_steps, d);
  }
}

// ---- subcommands ----
function inputs([dataset, nArg, batchArg, meanArg, stdArg, dir]) {
  const N = +nArg, B = +batchArg, mean = +meanArg, std = +stdArg;
  const file = path.join(dataset, 't10k-images-idx3-ubyte.gz');
  if (!fs.existsSync(file)) fail(`${file} not found`);
  const img = zlib.gunzipSync(fs.readFileSync(file));
  const count = img.readUInt32BE(4), px = 784;
  if (!(N >= 1 && N <= count)) fail(`--count ${N}: the test set has ${count} images`);
  for (let k = 0; k * B < N; k++) {
    const x = new Float32Array(B * px);
    for (let j = 0; j < B; j++) {
      const i = k * B + (k * B + j < N ? j : 0);  // padding rows repeat the file's first image
      for (let e = 0; e < px; e++) x[j * px + e] = (img[16 + i * px + e] / 255 - mean) / std;
    }
    writeNpy(path.join(dir, `x_${String(k).padStart(4, '0')}.npy`), x, [B, 1, 28, 28]);
  }
}

function argmax(a, off, n) { let b = 0; for (let c = 1; c < n; c++) if (a[off + c] > a[off + b]) b = c; return b; }

async function compare([model, nArg, inputDir, outputDir, threadsArg, progScaleArg, progZpArg]) {
  const ort = require('onnxruntime-node');
  const N = +nArg;
  let dq;
  try { dq = readOutputDequantize(model); } catch (e) { fail(e.message); }
  if (Math.abs(+progScaleArg - dq.scale) > 1e-5 * dq.scale || +progZpArg !== dq.zeroPoint)
    fail(`${model}: program output scale ${progScaleArg} zero point ${progZpArg}, QDQ file ${dq.scale} ${dq.zeroPoint}`);
  const s = await ort.InferenceSession.create(model, { intraOpNumThreads: +threadsArg, interOpNumThreads: 1,
                                                       graphOptimizationLevel: 'disabled' });
  const r = { elements: 0, equal: 0, one_step: 0, over_one_step: 0, max_steps: 0, images: 0, top1_agree: 0,
              scale: dq.scale, zero_point: dq.zeroPoint };
  for (let k = 0; r.images < N; k++) {
    const tag = String(k).padStart(4, '0');
    const x = readNpy(path.join(inputDir, `x_${tag}.npy`)), a = readNpy(path.join(outputDir, `y_${tag}.npy`));
    if (!(a.data instanceof Int8Array)) fail(`y_${tag}.npy: anvil run wrote ${a.data.constructor.name}, not int8`);
    const y = (await s.run({ [s.inputNames[0]]: new ort.Tensor('float32', x.data, x.shape) }))[dq.output].data;
    if (y.length !== a.data.length) fail(`y_${tag}.npy: ${a.data.length} elements, ONNX Runtime ${y.length}`);
    const B = x.shape[0], C = y.length / B, rows = Math.min(B, N - r.images);
    const q = Int8Array.from(y.subarray(0, rows * C), v => Math.round(v / dq.scale) + dq.zeroPoint);
    countSteps(r, q, a.data, rows * C);
    for (let j = 0; j < rows; j++) if (argmax(q, j * C, C) === argmax(a.data, j * C, C)) r.top1_agree++;
    r.images += rows;
  }
  console.log(JSON.stringify(r));
}

function report([resultsFile, jsonOut]) {
  const rows = fs.readFileSync(resultsFile, 'utf8').split('\n').filter(Boolean).map(l => JSON.parse(l));
  console.log('| model | method | elements | exactly equal | max \\|diff\\| (steps) | > 1 step | top-1 agreement |');
  console.log('|---|---|---|---|---|---|---|');
  for (const r of rows)
    console.log(`| ${r.model} | ${r.method} | ${r.elements} | ${(100 * r.equal / r.elements).toFixed(2)}% | ${r.max_steps} | ` +
                `${r.over_one_step} | ${(100 * r.top1_agree / r.images).toFixed(1)}% |`);
  console.log();
  for (const model of [...new Set(rows.map(r => r.model))]) {
    const mine = rows.filter(r => r.model === model), bad = mine.filter(r => r.max_steps > 1);
    const worst = Math.max(...mine.map(r => r.max_steps));
    console.log(bad.length === 0
      ? `${model}: within one step on every element for all ${mine.length} methods (max ${worst})`
      : `${model}: over one step for ${bad.length} of ${mine.length} methods (${bad.map(r => `${r.method} ${r.max_steps}`).join(', ')})`);
  }
  if (jsonOut) fs.writeFileSync(jsonOut, JSON.stringify(rows, null, 1) + '\n');
}

// ---- per-activation cuts (benchmarks/int8_vs_ort_layers.sh) ----
// writing: a varint, and a length-delimited field (wire type 2)
function encVarint(n) {
  const b = [];
  do { const x = n % 128; n = Math.floor(n / 128); b.push(n ? x | 128 : x); } while (n);
  return Buffer.from(b);
}
const lenField = (f, buf) => Buffer.concat([encVarint(f * 8 + 2), encVarint(buf.length), buf]);

// ValueInfoProto of a float tensor NAME, with DIMS (or no shape when DIMS is null):
// name = 1, type = 2; TypeProto.tensor_type = 1; elem_type = 1 (1 = float), shape = 2; dim = 1; dim_value = 1.
function floatValueInfo(name, dims) {
  const shape = dims ? lenField(2, Buffer.concat(dims.map(d => lenField(1, Buffer.concat([Buffer.from([8]), encVarint(d)])))))
                     : Buffer.alloc(0);
  return Buffer.concat([lenField(1, Buffer.from(name)),
                        lenField(2, lenField(1, Buffer.concat([Buffer.from([8, 1]), shape])))]);
}

// The quantized activations in graph order: each QuantizeLinear of a computed (non-constant) tensor whose
// output a DequantizeLinear reads. name: that DequantizeLinear's output; op: the node that computed the
// quantized tensor ('input' for the graph input); from: the float tensors quantized just upstream of the
// layer (each activation's QuantizeLinear input), with the activation they belong to; ops: the layer's
// arithmetic, the ops (in graph order) that compute on activation data, not on shapes or constants.
function quantizedActivations(g) {
  const isConst = t => g.consts.has(t) || (g.producer.has(t) && g.producer.get(t).op === 'Constant');
  const dqOf = new Map();  // QuantizeLinear output -> first DequantizeLinear output reading it
  for (const n of g.nodes) if (n.op === 'DequantizeLinear' && !dqOf.has(n.inputs[0])) dqOf.set(n.inputs[0], n.outputs[0]);
  const acts = [];
  for (const q of g.nodes) {
    if (q.op !== 'QuantizeLinear' || isConst(q.inputs[0]) || !dqOf.has(q.outputs[0])) continue;
    const src = g.producer.get(q.inputs[0]);
    const from = [], seen = new Set();
    // walk the layer back to the activations it reads: a DequantizeLinear of a QuantizeLinear output
    const walk = t => {
      const n = g.producer.get(t);
      if (!n || seen.has(n)) return;
      seen.add(n);
      if (n.op === 'DequantizeLinear') {
        const up = g.producer.get(n.inputs[0]);
        if (up && up.op === 'QuantizeLinear') { from.push({ tensor: up.inputs[0], activation: n.outputs[0] }); return; }
      }
      n.inputs.filter(Boolean).forEach(walk);
    };
    if (src) walk(q.inputs[0]);
    const data = new Set(from.map(u => u.activation)), ops = [];
    for (const n of g.nodes)
      if (seen.has(n) && n.op !== 'Shape' && n.op !== 'DequantizeLinear' && n.inputs.some(t => data.has(t))) {
        n.outputs.forEach(t => data.add(t)); ops.push(n.op);
      }
    acts.push({ name: dqOf.get(q.outputs[0]), op: src ? src.op : 'input', from, ops: ops.join('+') || '-' });
  }
  return acts;
}

// The model cut at TARGET: TARGET (float) is its one output, with OUT_DIMS (no shape when null); only the
// nodes TARGET depends on are kept; each tensor of FROM (a Map name -> dims) becomes a float graph input, its
// producers dropped. Returns the model's bytes and whether it still reads the original graph input.
function cutModel(g, target, outDims, from = new Map()) {
  const need = new Set([target]), keep = new Set();
  for (let i = g.nodes.length - 1; i >= 0; i--)
    if (g.nodes[i].outputs.some(o => need.has(o) && !from.has(o))) { keep.add(i); g.nodes[i].inputs.forEach(t => need.add(t)); }
  const nodeIndex = new Map(g.nodes.map((n, i) => [n.raw, i]));
  const name = v => { const n = fields(v).find(([h]) => h === 1); return n ? str(n[2]) : ''; };
  const parts = [];
  for (const [f, , v, raw] of g.fields) {
    if (f === 1) { if (keep.has(nodeIndex.get(raw))) parts.push(raw); }
    else if (f === 5) { if (need.has(str(fields(v).find(([h]) => h === 8)[2]))) parts.push(raw); }
    else if (f === 11 || f === 13) { const n = name(v); if (need.has(n) && !from.has(n)) parts.push(raw); }
    else if (f !== 12) parts.push(raw);
  }
  for (const [t, dims] of from) parts.push(lenField(11, floatValueInfo(t, dims)));
  parts.push(lenField(12, floatValueInfo(target, outDims)));
  return { bytes: Buffer.concat(g.top.map(([f, , , raw]) => f === 7 ? lenField(7, Buffer.concat(parts)) : raw)),
           readsInput: need.has(g.input) && !from.has(g.input) };
}

const batchFiles = dir => fs.readdirSync(dir).filter(f => /^x_\d{4}\.npy$/.test(f)).sort();

// layers-ort QDQ.onnx INPUT_DIR WORK_DIR THREADS
//   per quantized activation I (WORK_DIR/III/): whole.onnx, the model cut at it, and (unless it is the graph
//   input's) layer.onnx, the layer alone: the float tensors its upstream activations quantize are its inputs.
//   ORT's float outputs on every batch x_KKKK.npy of INPUT_DIR: ort_whole/x_KKKK.npy, and ort_layer/x_KKKK.npy
//   with the layer fed ORT's own upstream activations (their ort_whole). Prints one tab-separated line per
//   activation: index, activation, op, then the --input arguments of the whole and the layer model
//   (space-separated NAME=FILE, %K standing for the batch's four digits; '-' when there is no layer model).
async function layersOrt([model, inputDir, workDir, threadsArg]) {
  const ort = require('onnxruntime-node');
  const g = parseGraph(model), acts = quantizedActivations(g), files = batchFiles(inputDir);
  if (acts.length === 0) fail(`${model}: no QuantizeLinear of a computed tensor (not a QDQ file?)`);
  const opts = { intraOpNumThreads: +threadsArg, interOpNumThreads: 1, graphOptimizationLevel: 'disabled' };
  const index = new Map(acts.map((a, i) => [a.name, i]));
  const dirOf = i => path.join(workDir, String(i).padStart(3, '0'));
  const tensor = file => { const t = readNpy(file); return new ort.Tensor('float32', t.data, t.shape); };
  const image = `${inputDir}/x_%K.npy`;
  // cuts at TARGET (inputs FROM, each fed from the file pattern of SOURCES), runs ORT on every batch, writes
  // its outputs and the cut model with the output's shape; returns the --input arguments
  const runCut = async (i, mode, target, from, sources) => {
    const dir = dirOf(i), outDir = path.join(dir, `ort_${mode}`);
    fs.mkdirSync(outDir, { recursive: true });
    const cut = cutModel(g, target, null, from);
    if (cut.readsInput) sources = { [g.input]: image, ...sources };
    const s = await ort.InferenceSession.create(cut.bytes, opts);
    let dims;
    for (const f of files) {
      const k = f.slice(2, 6), feeds = {};
      for (const [name, pattern] of Object.entries(sources)) feeds[name] = tensor(pattern.replace('%K', k));
      const y = (await s.run(feeds))[target];
      writeNpy(path.join(outDir, f), y.data, y.dims);
      dims = y.dims;
    }
    await s.release();
    fs.writeFileSync(path.join(dir, `${mode}.onnx`), cutModel(g, target, dims, from).bytes);
    return Object.entries(sources).map(([name, pattern]) => `${name}=${pattern}`).join(' ');
  };
  for (const [i, a] of acts.entries()) {
    const whole = await runCut(i, 'whole', a.name, new Map(), {});
    let layer = '-';
    if (a.from.length) {
      const upstream = u => path.join(dirOf(index.get(u.activation)), 'ort_whole', 'x_%K.npy');
      const from = new Map(a.from.map(u => [u.tensor, readNpy(upstream(u).replace('%K', files[0].slice(2, 6))).shape]));
      layer = await runCut(i, 'layer', a.name, from, Object.fromEntries(a.from.map(u => [u.tensor, upstream(u)])));
    }
    console.log([i, a.name, a.op, whole, layer].join('\t'));
  }
}

// layers-report QDQ.onnx N WORK_DIR STATUS.tsv [JSON_OUT]
//   STATUS.tsv, from the driver: "INDEX MODE ok SCALE ZERO_POINT" (anvil's outputs in WORK_DIR/III/anvil_MODE/)
//   or "INDEX MODE not cut ERROR", tab-separated. Prints the Markdown table, one row per activation, and a summary.
function layersReport([model, nArg, workDir, statusFile, jsonOut]) {
  const N = +nArg, g = parseGraph(model), acts = quantizedActivations(g);
  const status = new Map(fs.readFileSync(statusFile, 'utf8').split('\n').filter(Boolean)
    .map(l => l.split('\t')).map(([i, mode, ...rest]) => [`${i} ${mode}`, rest]));
  const measure = (i, a, mode) => {
    const st = status.get(`${i} ${mode}`);
    if (!st) return null;
    if (st[0] !== 'ok') return { not_cut: st.slice(1).join(' ') };
    const grid = dequantizeGrid(g, a.name);
    if (Math.abs(+st[1] - grid.scale) > 1e-5 * grid.scale || +st[2] !== grid.zeroPoint)
      fail(`${a.name} (${mode}): program output scale ${st[1]} zero point ${st[2]}, QDQ file ${grid.scale} ${grid.zeroPoint}`);
    const dir = path.join(workDir, String(i).padStart(3, '0'));
    const r = { elements: 0, equal: 0, one_step: 0, over_one_step: 0, max_steps: 0 };
    let images = 0;
    for (const f of batchFiles(path.join(dir, `ort_${mode}`))) {
      if (images >= N) break;
      const y = readNpy(path.join(dir, `ort_${mode}`, f)), a8 = readNpy(path.join(dir, `anvil_${mode}`, f));
      if (!(a8.data instanceof Int8Array)) fail(`${a.name} (${mode}) ${f}: anvil run wrote ${a8.data.constructor.name}, not int8`);
      if (a8.data.length !== y.data.length) fail(`${a.name} (${mode}) ${f}: anvil ${a8.data.length} elements, ONNX Runtime ${y.data.length}`);
      const B = a8.shape[0], C = y.data.length / B, rows = Math.min(B, N - images);
      const q = Int8Array.from(y.data.subarray(0, rows * C), v => Math.round(v / grid.scale) + grid.zeroPoint);
      countSteps(r, q, a8.data, rows * C);
      images += rows;
    }
    return r;
  };
  // two decimals, but never 100.00% unless every element is equal
  const percent = (k, n) => k < n && 100 * k / n >= 99.995 ? '>99.99%' : `${(100 * k / n).toFixed(2)}%`;
  const rows = acts.map((a, i) => ({ index: i, activation: a.name, op: a.op, layer_ops: a.ops, whole: measure(i, a, 'whole'),
                                      layer: a.from.length ? measure(i, a, 'layer') : null }));
  const cells = r => !r ? ['-', '-', '-'] : r.not_cut !== undefined ? ['not cut', '-', '-']
    : [percent(r.equal, r.elements), r.max_steps, r.over_one_step];
  console.log('| # | activation | op | layer ops | elements | whole: equal | max \\|diff\\| | > 1 step | layer alone: equal | max \\|diff\\| | > 1 step | not cut because |');
  console.log('|---|---|---|---|---|---|---|---|---|---|---|---|');
  for (const r of rows) {
    const why = [r.whole, r.layer].filter(m => m && m.not_cut !== undefined).map(m => m.not_cut)[0] || '';
    const elements = [r.whole, r.layer].find(m => m && m.elements !== undefined);
    console.log(`| ${r.index} | ${r.activation} | ${r.op} | ${r.layer_ops} | ${elements ? elements.elements : '-'} | ${cells(r.whole).join(' | ')} | ` +
                `${cells(r.layer).join(' | ')} | ${why.replace(/\|/g, '\\|')} |`);
  }
  console.log();
  const cut = mode => rows.filter(r => r[mode] && r[mode].elements !== undefined);
  const whole = cut('whole'), layer = cut('layer'), worst = xs => Math.max(0, ...xs.map(r => r.max_steps));
  const firstOver = whole.find(r => r.whole.max_steps > 1);
  console.log(`layer alone: ${layer.length} of ${rows.filter(r => r.layer).length} layers cut, ` +
              `${layer.filter(r => r.layer.max_steps <= 1).length} within one step (max ${worst(layer.map(r => r.layer))})`);
  console.log(`whole network: ${whole.length} of ${rows.length} activations cut, max ${worst(whole.map(r => r.whole))} steps` +
              (firstOver ? `, first over one step at #${firstOver.index} ${firstOver.activation} (${firstOver.op}, ${firstOver.whole.max_steps})` : ''));
  if (jsonOut) fs.writeFileSync(jsonOut, JSON.stringify(rows, null, 1) + '\n');
}

const [cmd, ...rest] = process.argv.slice(2);
const commands = { inputs, compare, report, 'layers-ort': layersOrt, 'layers-report': layersReport };
if (!commands[cmd]) fail('usage: int8_vs_ort.js inputs|compare|report|layers-ort|layers-report ... (see the header)');
Promise.resolve(commands[cmd](rest)).catch(e => fail(String(e && e.message || e)));
