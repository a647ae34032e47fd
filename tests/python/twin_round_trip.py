"""The Python half of test_weights' twin round trip (issue 16), for one model:

1. ventral -> PyTorch: ventral_torch.load(DIR/model.pt) (written by ventral's export_model),
   logits at every step on DIR/input.pt -> DIR/twin_logits.pt.
2. PyTorch -> ventral: a fresh twin (seeded, batch-norm statistics from one train-mode pass)
   saved with DataParallel's "module." prefix -> DIR/python.pt, and its logits on the same input
   -> DIR/python_logits.pt, for ventral to load and compare.

    python3 tests/python/twin_round_trip.py DIR STEPS
"""
import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "python"))
import torch  # noqa: E402

import ventral_torch  # noqa: E402


def logits_dict(model, x, steps):
    with torch.no_grad():
        return {str(t): y.contiguous() for t, y in enumerate(model(x, steps))}


def main():
    folder, steps = sys.argv[1], int(sys.argv[2])
    torch.set_num_threads(1)
    x = torch.load(os.path.join(folder, "input.pt"))
    model = ventral_torch.load(os.path.join(folder, "model.pt"))
    assert not model.training
    torch.save(logits_dict(model, x, steps), os.path.join(folder, "twin_logits.pt"))

    with open(os.path.join(folder, "model.json")) as f:
        meta = json.load(f)
    torch.manual_seed(11)
    twin = ventral_torch.from_meta(meta)
    twin.train()
    with torch.no_grad():
        twin(torch.randn(4, *x.shape[1:]), steps)
    twin.eval()
    torch.save({"module." + k: v for k, v in twin.state_dict().items()}, os.path.join(folder, "python.pt"))
    torch.save(logits_dict(twin, x, steps), os.path.join(folder, "python_logits.pt"))
    print(sum(p.numel() for p in twin.parameters()))


if __name__ == "__main__":
    main()
