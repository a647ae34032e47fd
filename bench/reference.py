#!/usr/bin/env python3
"""PyTorch (Python) reference implementations of ventral's benchmarked models, timed the way
`ventral bench` times them: random data of the model's input shape, warm-up, then training
steps (forward + backward + SGD with momentum, loss summed over the read-out steps) and
inference (torch.inference_mode, eval mode).

The architectures mirror models/resnet.cpp, models/shared_resnet.cpp, models/cortical.cpp and
models/cornet.cpp layer for layer; the parameter counts are printed so bench/run can check
them against `ventral bench --json`.

    python3 bench/reference.py --model resnet20 --batch 128 --iters 20 --threads 2 --json
"""
import argparse
import json
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


def conv(cin, cout, k, stride=1):
    return nn.Conv2d(cin, cout, k, stride=stride, padding=k // 2, bias=False)


def init_resnet_weights(module):
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


class TimeBatchNorm(nn.Module):
    """One BatchNorm2d per step; steps beyond the last reuse the last."""

    def __init__(self, channels, copies):
        super().__init__()
        self.norms = nn.ModuleList([nn.BatchNorm2d(channels) for _ in range(copies)])

    def forward(self, x, step):
        return self.norms[min(step, len(self.norms) - 1)](x)


class BasicBlock(nn.Module):
    def __init__(self, cin, planes, stride=1, norm_copies=1):
        super().__init__()
        self.conv1 = conv(cin, planes, 3, stride)
        self.conv2 = conv(planes, planes, 3)
        self.timed = norm_copies > 1
        if self.timed:
            self.bn1 = TimeBatchNorm(planes, norm_copies)
            self.bn2 = TimeBatchNorm(planes, norm_copies)
        else:
            self.bn1 = nn.BatchNorm2d(planes)
            self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = None
        if stride != 1 or cin != planes:
            self.downsample = nn.Sequential(conv(cin, planes, 1, stride), nn.BatchNorm2d(planes))

    def forward(self, x, step=0):
        bn1 = (lambda y: self.bn1(y, step)) if self.timed else self.bn1
        bn2 = (lambda y: self.bn2(y, step)) if self.timed else self.bn2
        out = F.relu(bn1(self.conv1(x)))
        out = bn2(self.conv2(out))
        identity = self.downsample(x) if self.downsample is not None else x
        return F.relu(out + identity)


class ResNet20(nn.Module):
    """CIFAR ResNet-20, projection (option B) shortcuts, as ventral's resnet20."""

    def __init__(self, in_channels=1, classes=10, n=3, width=16):
        super().__init__()
        self.conv1 = conv(in_channels, width, 3)
        self.bn1 = nn.BatchNorm2d(width)
        layers, cin = [], width
        for s, w in enumerate([width, 2 * width, 4 * width]):
            blocks = []
            for b in range(n):
                blocks.append(BasicBlock(cin, w, 2 if (b == 0 and s > 0) else 1))
                cin = w
            layers.append(nn.Sequential(*blocks))
        self.layer1, self.layer2, self.layer3 = layers
        self.fc = nn.Linear(cin, classes)
        init_resnet_weights(self)

    def forward(self, x, steps=1):
        x = F.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        return [self.fc(x.mean((2, 3)))]


class SharedResNet(nn.Module):
    """One residual block per stage unrolled `steps` times, per-step BN, avg-pool transitions."""

    def __init__(self, in_channels=1, classes=10, steps=3, width=16):
        super().__init__()
        self.steps = steps
        widths = [width, 2 * width, 4 * width]
        self.conv1 = conv(in_channels, width, 3)
        self.bn1 = nn.BatchNorm2d(width)
        self.transitions = nn.ModuleList(
            [nn.Sequential(nn.AvgPool2d(2), conv(widths[s - 1], widths[s], 1), nn.BatchNorm2d(widths[s]))
             for s in (1, 2)])
        self.blocks = nn.ModuleList([BasicBlock(w, w, 1, steps) for w in widths])
        self.fc = nn.Linear(widths[-1], classes)
        init_resnet_weights(self)

    def forward(self, x, steps=None):
        steps = steps or self.steps
        x = F.relu(self.bn1(self.conv1(x)))
        for s, block in enumerate(self.blocks):
            if s > 0:
                x = F.relu(self.transitions[s - 1](x))
            for t in range(steps):
                x = block(x, min(t, self.steps - 1))
        return [self.fc(x.mean((2, 3)))]


class Area(nn.Module):
    def __init__(self, cin, width, above, steps):
        super().__init__()
        self.bottom_up = conv(cin, width, 3)
        self.lateral = conv(width, width, 3)
        self.top_down = conv(above, width, 3) if above else None
        self.norm = TimeBatchNorm(width, steps)


class CorticalBLT(nn.Module):
    """V1-V2-V4-IT with bottom-up, lateral and top-down (nearest upsample + 3x3 conv) drives,
    sequential unrolling, image at every step, readout at every step."""

    def __init__(self, in_channels=1, classes=10, steps=4, width=16):
        super().__init__()
        self.steps = steps
        self.widths = [width, 2 * width, 4 * width, 8 * width]
        self.areas = nn.ModuleList()
        for k in range(4):
            cin = in_channels if k == 0 else self.widths[k - 1]
            above = self.widths[k + 1] if k + 1 < 4 else 0
            self.areas.append(Area(cin, self.widths[k], above, steps))
        self.readout = nn.Linear(self.widths[3], classes)
        init_resnet_weights(self)

    def forward(self, images, steps=None):
        steps = steps or self.steps
        sizes, h, w = [], images.shape[2], images.shape[3]
        for _ in range(4):
            sizes.append((h, w))
            h, w = h // 2, w // 2
        prev, logits = [None] * 4, []
        for t in range(steps):
            cur = [None] * 4
            for k, area in enumerate(self.areas):
                below = images if k == 0 else F.max_pool2d(cur[k - 1], 2)
                drive = area.bottom_up(below)
                if t > 0:
                    drive = drive + area.lateral(prev[k])
                    if area.top_down is not None:
                        drive = drive + area.top_down(F.interpolate(prev[k + 1], size=sizes[k], mode="nearest"))
                cur[k] = F.relu(area.norm(drive, t))
            logits.append(self.readout(cur[3].mean((2, 3))))
            prev = cur
        return logits


class CORnetZ(nn.Module):
    """CORnet-Z (Kubilius et al.): conv + ReLU + 3x3/2 max pool per area, GAP + linear decoder."""

    def __init__(self, in_channels=1, classes=10):
        super().__init__()
        widths, cin, blocks = [64, 128, 256, 512], in_channels, []
        for k, w in enumerate(widths):
            ks = 7 if k == 0 else 3
            blocks.append(nn.Conv2d(cin, w, ks, stride=2 if k == 0 else 1, padding=ks // 2))
            cin = w
        self.convs = nn.ModuleList(blocks)
        self.linear = nn.Linear(cin, classes)

    def forward(self, x, steps=1):
        for c in self.convs:
            x = F.max_pool2d(F.relu(c(x)), 3, 2, 1)
        return [self.linear(x.mean((2, 3)))]


MODELS = {"resnet20": ResNet20, "shared_resnet": SharedResNet, "cortical_blt": CorticalBLT, "cornet_z": CORnetZ}


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="resnet20", choices=sorted(MODELS))
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--iters", type=int, default=20)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--image-size", type=int, default=28)
    p.add_argument("--channels-last", action="store_true")
    p.add_argument("--precision", choices=["fp32", "bf16"], default="fp32",
                   help="bf16: torch.autocast('cpu', torch.bfloat16) around forward and loss (fp32 weights, "
                        "optimizer and batch-norm statistics), as a PyTorch user runs mixed precision on CPU")
    p.add_argument("--json", action="store_true")
    a = p.parse_args()

    torch.set_num_threads(a.threads)
    torch.set_flush_denormal(True)
    torch.manual_seed(0)
    m = MODELS[a.model]()
    x = torch.randn(a.batch, 1, a.image_size, a.image_size)
    y = torch.randint(10, (a.batch,))
    if a.channels_last:
        m = m.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    opt = torch.optim.SGD(m.parameters(), lr=0.01, momentum=0.9)

    def timed(body):
        for _ in range(a.warmup):
            body()
        t0 = time.perf_counter()
        for _ in range(a.iters):
            body()
        return a.batch * a.iters / (time.perf_counter() - t0)

    bf16 = a.precision == "bf16"

    def train_step():
        opt.zero_grad()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            logits = m(x)
            loss = sum(F.cross_entropy(l, y) for l in logits)
        loss.backward()
        opt.step()

    def eval_step():
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            m(x)

    m.train()
    train = timed(train_step)
    m.eval()
    ev = timed(eval_step)
    params = sum(t.numel() for t in m.parameters())
    out = {"model": a.model, "params": params, "batch": a.batch, "threads": a.threads,
           "precision": a.precision, "train_images_per_s": train, "eval_images_per_s": ev}
    if a.json:
        print(json.dumps(out))
    else:
        print(f"{a.model}: {params} parameters, batch {a.batch}, {a.threads} threads: "
              f"train {train:.1f} images/s, eval {ev:.1f} images/s")


if __name__ == "__main__":
    main()
