#!/usr/bin/python3
"""Train the demo network that anvil ships (examples/demo/demo_cnn.onnx).

Needs Debian's python3-torch (run with /usr/bin/python3). anvil itself never needs Python; this script only
documents, and lets anyone reproduce, how the shipped model was made.

usage: train_demo_model.py [OUT_DIR]   (default: the folder of this script)
The network is deliberately small but exercises every operator the walking skeleton lowers: Conv with
BatchNormalization (exported unfolded, so anvil's own BN folding is used), Relu, MaxPool, a residual Add,
GlobalAveragePool, Flatten and Gemm. Input: N x 1 x 28 x 28 float32, (pixel/255 - 0.2860) / 0.3530.
"""
import gzip, json, os, sys
import numpy as np
import torch
import torch.nn as nn

MEAN, STD = 0.2860, 0.3530
DATA = '/usr/share/datasets/fashion-mnist/'


def load(split):
    prefix = 'train' if split == 'train' else 't10k'
    with gzip.open(DATA + prefix + '-images-idx3-ubyte.gz') as f:
        images = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 1, 28, 28)
    with gzip.open(DATA + prefix + '-labels-idx1-ubyte.gz') as f:
        labels = np.frombuffer(f.read(), np.uint8, offset=8)
    x = (images.astype(np.float32) / 255.0 - MEAN) / STD
    return torch.from_numpy(x), torch.from_numpy(labels.astype(np.int64))


class DemoCnn(nn.Module):
    def __init__(self):
        super().__init__()
        def block(cin, cout):
            return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout))
        self.conv1, self.conv2, self.conv3, self.conv4 = block(1, 16), block(16, 32), block(32, 32), block(32, 64)
        self.relu = nn.ReLU()
        self.pool = nn.MaxPool2d(2)
        self.gap = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(64, 10)

    def forward(self, x):
        x = self.pool(self.relu(self.conv1(x)))          # 16 x 14 x 14
        y = self.relu(self.conv2(x))                      # 32 x 14 x 14
        x = self.pool(self.relu(self.conv3(y) + y))       # residual, 32 x 7 x 7
        x = self.relu(self.conv4(x))                      # 64 x 7 x 7
        return self.fc(torch.flatten(self.gap(x), 1))


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.dirname(os.path.abspath(__file__))
    torch.manual_seed(0)
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    xtr, ytr = load('train')
    xte, yte = load('test')
    model = DemoCnn()
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    epochs = 3
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=3e-3, total_steps=epochs * (len(xtr) // 128 + 1))
    for epoch in range(epochs):
        model.train()
        perm = torch.randperm(len(xtr))
        for i in range(0, len(xtr), 128):
            idx = perm[i:i + 128]
            opt.zero_grad()
            loss = nn.functional.cross_entropy(model(xtr[idx]), ytr[idx])
            loss.backward()
            opt.step()
            sched.step()
        model.eval()
        with torch.no_grad():
            acc = (model(xte).argmax(1) == yte).float().mean().item()
        print(f'epoch {epoch + 1}/{epochs}: loss {loss.item():.4f} test top-1 {acc:.4f}', flush=True)
    path = os.path.join(out, 'demo_cnn.onnx')
    # do_constant_folding=False keeps BatchNormalization as its own node so anvil's BN folding pass does the work.
    torch.onnx.export(model, torch.zeros(1, 1, 28, 28), path, opset_version=13, input_names=['input'],
                      output_names=['logits'], dynamic_axes={'input': {0: 'N'}, 'logits': {0: 'N'}},
                      do_constant_folding=False, training=torch.onnx.TrainingMode.EVAL)
    with open(os.path.join(out, 'demo_cnn.json'), 'w') as f:
        json.dump({'model': 'demo_cnn', 'fp32_top1_pytorch': round(acc, 4), 'epochs': epochs, 'seed': 0,
                   'normalize': {'mean': MEAN, 'std': STD},
                   'input': 'N x 1 x 28 x 28 float32, (pixel/255 - mean)/std'}, f, indent=1)
    print(path, os.path.getsize(path), 'bytes')


if __name__ == '__main__':
    main()
