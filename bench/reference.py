#!/usr/bin/env python3
"""PyTorch (Python) references for ventral's benchmarked models, timed the way `ventral bench`
times them: random data of the model's input shape, warm-up, then training steps (forward +
backward + SGD with momentum, loss summed over the read-out steps) and inference
(torch.inference_mode, eval mode).

The models are python/ventral_torch's twins: the same architectures, parameter names and per-step
outputs as ventral's (tests/test_weights.cpp checks the logits), so there is one Python
definition; the parameter counts are printed so bench/run can check them against
`ventral bench --json`.

    python3 bench/reference.py --model resnet20 --batch 128 --iters 20 --threads 2 --json
"""
import argparse
import json
import os
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python"))
import ventral_torch  # noqa: E402


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="resnet20", choices=ventral_torch.list_models())
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
    m = ventral_torch.create(a.model, in_channels=1, num_classes=10, image_size=a.image_size)
    x = torch.randn(a.batch, 1, a.image_size, a.image_size)
    y = torch.randint(10, (a.batch,))
    if a.channels_last:
        # Channels-last strides for every 4-D tensor, as ventral's use_memory_format gives them:
        # .to(memory_format=) and .contiguous(memory_format=) leave a tensor with one channel
        # (the 1-channel image, the first convolution's weight) in its NCHW strides, since it
        # counts as channels-last already, and a convolution of an NCHW-strided input with an
        # NCHW-strided weight leaves oneDNN's channels-last path (26 ms against 0.4 ms for
        # resnet20's stem at batch 128 on the AMD EPYC of bench/RESULTS.md). Without this the
        # reference would be slowed by that quirk, not by Python.
        m = m.to(memory_format=torch.channels_last)
        with torch.no_grad():
            for t in list(m.parameters()) + list(m.buffers()):
                if t.dim() == 4:
                    t.data = torch.empty(t.shape, dtype=t.dtype, memory_format=torch.channels_last).copy_(t.data)
        x = torch.empty(x.shape, dtype=x.dtype, memory_format=torch.channels_last).copy_(x)
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
