#!/usr/bin/env node
// Compares two ranges files written by `anvil calibrate` field by field (what docs/quantization.md,
// "Calibration cost", reports when a change to calibration must leave its statistics alone):
// every field of every tensor and every method's range must be equal; per-channel means are
// compared as numbers, and their largest relative difference is printed. Also prints how many
// values each file's tensors saw in all.
// usage: node benchmarks/compare_calibration.js OLD.json NEW.json   (exit status 1 when they differ)
const fs = require('fs');
const [oldPath, newPath] = process.argv.slice(2);
if (!oldPath || !newPath) {
  console.error('usage: compare_calibration.js OLD.json NEW.json');
  process.exit(2);
}
const a = JSON.parse(fs.readFileSync(oldPath)), b = JSON.parse(fs.readFileSync(newPath));
const differ = [];
let meanRel = 0;
for (const key of new Set([...Object.keys(a), ...Object.keys(b)])) {
  if (key === 'tensors') continue;
  if (key === 'ranges') {
    for (const method of new Set([...Object.keys(a.ranges || {}), ...Object.keys(b.ranges || {})]))
      for (const t of new Set([...Object.keys(a.ranges[method] || {}), ...Object.keys(b.ranges[method] || {})]))
        if (JSON.stringify((a.ranges[method] || {})[t]) !== JSON.stringify((b.ranges[method] || {})[t]))
          differ.push(`ranges ${method} ${t}`);
    continue;
  }
  if (JSON.stringify(a[key]) !== JSON.stringify(b[key])) differ.push(key);
}
const ta = a.tensors || {}, tb = b.tensors || {};
for (const t of new Set([...Object.keys(ta), ...Object.keys(tb)])) {
  if (!ta[t] || !tb[t]) { differ.push(`tensor ${t} only in one file`); continue; }
  for (const f of new Set([...Object.keys(ta[t]), ...Object.keys(tb[t])])) {
    if (f === 'channel_mean' && ta[t][f] && tb[t][f] && ta[t][f].length === tb[t][f].length) {
      ta[t][f].forEach((v, i) => {
        const rel = Math.abs(v - tb[t][f][i]) / Math.max(1e-300, Math.abs(v));
        meanRel = Math.max(meanRel, rel);
      });
      continue;
    }
    if (JSON.stringify(ta[t][f]) !== JSON.stringify(tb[t][f])) differ.push(`tensor ${t} ${f}`);
  }
}
const values = (tensors) => Object.values(tensors).reduce((n, s) => n + (s.count || 0), 0);
console.log(`values observed: ${values(ta)} (old), ${values(tb)} (new)`);
console.log(`channel means: largest relative difference ${meanRel}`);
console.log(differ.length ? `differ (${differ.length}):\n  ${differ.join('\n  ')}` : 'every other field equal');
process.exit(differ.length ? 1 : 0);
