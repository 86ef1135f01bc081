#!/usr/bin/python3
"""PyTorch FX post-training quantization of torchvision models, the peer column of docs/quantization.md.

Benchmark only (never used by the build or the tests). Run with Debian's python3-torch (torch 1.13):

  /usr/bin/python3 benchmarks/quant_vs_fx.py [--out DIR] [--models /tmp/tv] [--prepare-only] [NAME ...]

For each architecture (default: resnet50 mobilenet_v2 efficientnet_b0):
  * builds the model exactly as /work/shared/tools/export_torchvision.py does (torch.manual_seed(0), then the
    torchvision constructor, eval mode), so its weights are those of the ONNX export; exports MODELS/NAME.onnx
    with that script if the file does not exist;
  * writes an anvil npy dataset OUT/NAME/: train_images.npy (64 calibration inputs, torch.manual_seed(1)),
    test_images.npy (64 evaluation inputs, torch.manual_seed(2)), both torch.randn N x 3 x 224 x 224 float32,
    and test_labels.npy (int64, the FP32 model's argmax, so anvil's top-1 is agreement with FP32);
  * runs FX PTQ (prepare_fx / calibrate on the 64 calibration inputs / convert_fx, quantized engine 'onednn')
    twice: get_default_qconfig_mapping('onednn') (HistogramObserver activations, per-channel symmetric
    min-max weights) and the same mapping with a MinMaxObserver activation qconfig as global;
  * prints and writes OUT/fx_sqnr.json: output SQNR in dB against FP32 on the 64 evaluation inputs,
    10*log10(sum f^2 / sum (f - q)^2) over all logits, per observer and the best of the two.
An architecture FX cannot quantize is reported with its one-line error ("does not apply").

The anvil side of the comparison is the CLI, per model:
  anvil eval MODELS/NAME.onnx --dataset npy:OUT/NAME --methods all --backend qdq --calib-count 64 --json NAME.json
and `quant_vs_fx.py --table DIR [NAME ...]` prints the markdown table of docs/quantization.md from DIR/NAME.json
(anvil) and OUT/fx_sqnr.json (FX) without running anything.
"""
import argparse
import json
import math
import os
import sys
import time
import traceback

import numpy as np
import torch
import torchvision.models as tvm

NAMES = ['resnet50', 'mobilenet_v2', 'efficientnet_b0']
N_CALIB = 64
N_EVAL = 64
BATCH = 8
EXPORT_SCRIPT = '/work/shared/tools/export_torchvision.py'


def build(name):
    # Same sequence as export_torchvision.export(): the seed, then the constructor.
    torch.manual_seed(0)
    return getattr(tvm, name)().eval()


def ensure_onnx(models_dir, name):
    path = os.path.join(models_dir, name + '.onnx')
    if not os.path.exists(path):
        sys.path.insert(0, os.path.dirname(EXPORT_SCRIPT))
        import export_torchvision
        os.makedirs(models_dir, exist_ok=True)
        export_torchvision.export(models_dir, name)
    return path


def inputs(seed, n):
    torch.manual_seed(seed)
    return torch.randn(n, 3, 224, 224, dtype=torch.float32)


def run(model, x):
    with torch.no_grad():
        return torch.cat([model(x[i:i + BATCH]) for i in range(0, x.shape[0], BATCH)])


def sqnr_db(f, q):
    f = f.double()
    q = q.double()
    noise = ((f - q) ** 2).sum().item()
    signal = (f ** 2).sum().item()
    return math.inf if noise == 0 else 10.0 * math.log10(signal / noise)


def fx_ptq(model_fp32, calib, evalx, ref, observer, eps=None):
    from torch.ao.quantization import QConfig, MinMaxObserver, HistogramObserver, default_per_channel_weight_observer
    from torch.ao.quantization import get_default_qconfig_mapping
    from torch.ao.quantization.quantize_fx import prepare_fx, convert_fx
    import copy
    torch.backends.quantized.engine = 'onednn'
    mapping = get_default_qconfig_mapping('onednn')
    extra = {} if eps is None else {'eps': eps}
    if observer == 'minmax' or eps is not None:
        # The default mapping names Conv/Linear/ReLU/BatchNorm... explicitly with the histogram qconfig, so
        # set_global alone would change almost nothing: swap the activation observer wherever it is used.
        default = mapping.global_qconfig
        cls = MinMaxObserver if observer == 'minmax' else HistogramObserver
        act = cls.with_args(reduce_range=False, **extra)
        mapping.set_global(QConfig(activation=act, weight=default_per_channel_weight_observer))
        for key, qc in list(mapping.object_type_qconfigs.items()):
            if qc is not None and qc.activation is default.activation:
                mapping.set_object_type(key, QConfig(activation=act, weight=qc.weight))
    m = copy.deepcopy(model_fp32)
    t0 = time.time()
    prepared = prepare_fx(m, mapping, example_inputs=(calib[:1],))
    observers = sorted({type(mod).__name__ for mod in prepared.modules() if 'Observer' in type(mod).__name__})
    run(prepared, calib)
    q = convert_fx(prepared)
    t1 = time.time()
    out = run(q, evalx)
    t2 = time.time()
    agree = (out.argmax(1) == ref.argmax(1)).float().mean().item()
    return {'sqnr_db': sqnr_db(ref, out), 'top1_agreement': agree, 'observers': observers,
            'calibrate_convert_s': round(t1 - t0, 1), 'eval_s': round(t2 - t1, 1)}


METHODS = ['MIN_MAX_ASYM', 'MIN_MAX_SYM', 'ENTROPY_ASYM', 'ENTROPY_SYM', 'PERCENTILE_ASYM', 'PERCENTILE_SYM',
           'SQNR_ASYM', 'SQNR_SYM', 'MSE_ASYM', 'MSE_SYM']


def table(anvil_dir, fx_json, names):
    fx, fx_eps = {}, {}
    if os.path.exists(fx_json):
        fx = {m['model']: m for m in json.load(open(fx_json))['models']}
    eps_json = fx_json.replace('fx_sqnr.json', 'fx_sqnr_eps.json')
    if os.path.exists(eps_json):
        fx_eps = {m['model']: m for m in json.load(open(eps_json))['models']}
    head = ['model'] + METHODS + ['anvil best', 'FX histogram', 'FX min-max', 'FX best', 'FX best, eps 1e-30']
    print('| ' + ' | '.join(head) + ' |')
    print('|' + '---|' * len(head))
    for name in names:
        row = [name]
        path = os.path.join(anvil_dir, name + '.json')
        if os.path.exists(path):
            res = {r['method']: r['output_sqnr_db'] for r in json.load(open(path))['results']}
            row += [f'{res[m]:.1f}' if m in res else 'n/a' for m in METHODS]
            best = max(res, key=res.get)
            row.append(f'{res[best]:.1f} ({best})')
        else:
            row += ['not run'] * (len(METHODS) + 1)
        f = fx.get(name, {})
        for key in ('fx_histogram', 'fx_minmax'):
            r = f.get(key)
            row.append('not run' if r is None else f'{r["sqnr_db"]:.1f}' if 'sqnr_db' in r else 'does not apply')
        for f in (f, fx_eps.get(name, {})):
            row.append('not run' if not f else f'{f["fx_best_sqnr_db"]:.1f}' if f.get('fx_best_sqnr_db') is not None
                       else 'does not apply')
        print('| ' + ' | '.join(row) + ' |')


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('names', nargs='*', default=NAMES)
    ap.add_argument('--out', default='/tmp/quant_vs_fx', help='datasets and fx_sqnr.json go here')
    ap.add_argument('--models', default='/tmp/tv', help='directory of NAME.onnx (exported if missing)')
    ap.add_argument('--prepare-only', action='store_true', help='export and write the datasets, skip FX')
    ap.add_argument('--eps', type=float, help="activation observers' minimum scale (torch's default: float32 "
                    "eps 1.19e-7, which rounds every activation of these random-weight models' deep layers to 0)")
    ap.add_argument('--table', metavar='DIR', help='print the markdown table from DIR/NAME.json and OUT/fx_sqnr.json')
    ap.add_argument('--threads', type=int, default=max(1, os.cpu_count() or 1))
    a = ap.parse_args()
    if a.table:
        return table(a.table, os.path.join(a.out, 'fx_sqnr.json'), a.names)
    torch.set_num_threads(a.threads)
    os.makedirs(a.out, exist_ok=True)
    calib = inputs(1, N_CALIB)
    evalx = inputs(2, N_EVAL)
    report = {'torch': torch.__version__, 'calibration_inputs': N_CALIB, 'evaluation_inputs': N_EVAL,
              'engine': 'onednn', 'models': []}
    report['activation_observer_eps'] = a.eps if a.eps is not None else 'torch default'
    json_path = os.path.join(a.out, 'fx_sqnr.json' if a.eps is None else 'fx_sqnr_eps.json')
    for name in a.names:
        onnx_path = ensure_onnx(a.models, name)
        model = build(name)
        ref = run(model, evalx)
        ds = os.path.join(a.out, name)
        os.makedirs(ds, exist_ok=True)
        labels = ref.argmax(1).numpy().astype(np.int64)
        for fname, arr in (('train_images.npy', calib.numpy()), ('test_images.npy', evalx.numpy()),
                           ('test_labels.npy', labels)):
            path = os.path.join(ds, fname)
            if os.path.exists(path):  # written by an earlier run (maybe being read by anvil): check, keep
                if not np.array_equal(np.load(path), arr):
                    sys.exit(f'{path}: differs from the inputs this script makes; remove it')
            else:
                np.save(path, arr)
        print(f'{name}: {onnx_path}, dataset npy:{ds}', flush=True)
        entry = {'model': name, 'onnx': onnx_path, 'dataset': 'npy:' + ds}
        if not a.prepare_only:
            for obs in ('histogram', 'minmax'):
                try:
                    r = fx_ptq(model, calib, evalx, ref, obs, a.eps)
                    print(f'  FX {obs:9s}: SQNR {r["sqnr_db"]:.2f} dB, top-1 agreement {r["top1_agreement"]:.3f}'
                          f' (calibrate+convert {r["calibrate_convert_s"]} s, eval {r["eval_s"]} s;'
                          f' observers {", ".join(r["observers"])})', flush=True)
                except Exception as e:  # report, do not hide: this architecture is "does not apply" for FX
                    msg = ' '.join(f'{type(e).__name__}: {e}'.split())[:300]
                    r = {'error': msg}
                    print(f'  FX {obs:9s}: does not apply: {msg}', flush=True)
                    traceback.print_exc(file=sys.stderr)
                entry['fx_' + obs] = r
            ok = [entry['fx_' + o]['sqnr_db'] for o in ('histogram', 'minmax') if 'sqnr_db' in entry['fx_' + o]]
            entry['fx_best_sqnr_db'] = max(ok) if ok else None
            print(f'  FX best     : {entry["fx_best_sqnr_db"]}', flush=True)
        report['models'].append(entry)
        with open(json_path, 'w') as f:
            json.dump(report, f, indent=1)
    print('wrote', json_path)


if __name__ == '__main__':
    main()
