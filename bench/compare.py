#!/usr/bin/env python3
"""Side-by-side throughput: `ventral bench` vs bench/reference.py (the same architectures in
PyTorch-Python, same libtorch build, batch and threads), measured in one run, interleaved,
median of --reps repetitions. Also: the loader with augmentation against resnet20's training
rate, the perturbation library, and cortical BLT's time and peak memory against T and batch.
Prints the tables and PASS/FAIL against the performance targets, and writes bench/RESULTS.md.
Run through bench/run (which installs python3-torch and builds ventral)."""
import argparse
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VENTRAL = os.path.join(ROOT, "build", "ventral")
REFERENCE = os.path.join(ROOT, "bench", "reference.py")
MODELS = ["resnet20", "shared_resnet", "cortical_blt", "cornet_z"]
# (model, kind, minimum ventral/python ratio)
TARGETS = [("resnet20", "train", 1.15), ("cortical_blt", "train", 1.3),
           ("resnet20", "eval", 1.3), ("cortical_blt", "eval", 1.3)]


def run_json(cmd):
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def machine():
    model, flags = "?", ""
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name") and model == "?":
                model = line.split(":", 1)[1].strip()
            if line.startswith("flags") and not flags:
                flags = line
    isa = [f for f in ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_bf16", "amx_tile") if re.search(rf"\b{f}\b", flags)]
    torch_version = subprocess.run(["/usr/bin/python3", "-c", "import torch; print(torch.__version__)"],
                                   capture_output=True, text=True).stdout.strip()
    return {"cpu": model, "cores": len(os.sched_getaffinity(0)), "isa": isa, "torch": torch_version,
            "kernel": platform.release()}


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--iters", type=int, default=10)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    p.add_argument("--quick", action="store_true", help="one repetition, few iterations, no scaling (a smoke run)")
    p.add_argument("--out", default=os.path.join(ROOT, "bench", "RESULTS.md"))
    a = p.parse_args()
    if a.quick:
        a.reps, a.iters = 1, 3
    started = time.time()
    common = ["--batch", str(a.batch), "--iters", str(a.iters), "--threads", str(a.threads), "--json"]
    sides = {
        "ventral": lambda m: [VENTRAL, "bench", "--model", m] + common,
        "ventral_nchw": lambda m: [VENTRAL, "bench", "--model", m, "--memory-format", "contiguous"] + common,
        "python": lambda m: ["/usr/bin/python3", REFERENCE, "--model", m] + common,
        "python_cl": lambda m: ["/usr/bin/python3", REFERENCE, "--model", m, "--channels-last"] + common,
    }
    samples = {(m, s): [] for m in MODELS for s in sides}
    for rep in range(a.reps):
        for m in MODELS:
            for side, cmd in sides.items():  # interleaved: drifts in machine speed hit every side alike
                samples[(m, side)].append(run_json(cmd(m)))
                print(f"  rep {rep + 1}/{a.reps} {m:14s} {side:10s} train {samples[(m, side)][-1]['train_images_per_s']:7.1f}"
                      f"  eval {samples[(m, side)][-1]['eval_images_per_s']:7.1f} images/s", file=sys.stderr)

    def med(m, side, key):
        return statistics.median(s[key] for s in samples[(m, side)])

    rows, params_ok = [], True
    for m in MODELS:
        pv, pp = samples[(m, "ventral")][0]["params"], samples[(m, "python")][0]["params"]
        params_ok &= pv == pp
        r = {"model": m, "params_ventral": pv, "params_python": pp}
        for kind in ("train", "eval"):
            key = f"{kind}_images_per_s"
            r[kind] = {s: med(m, s, key) for s in sides}
            r[kind]["ratio"] = r[kind]["ventral"] / r[kind]["python"]
            r[kind]["ratio_cl"] = r[kind]["ventral"] / r[kind]["python_cl"]
        r["memory_format"] = samples[(m, "ventral")][0]["memory_format"]
        rows.append(r)

    loader = run_json([VENTRAL, "bench", "--loader", "--batch", str(a.batch), "--json"])
    perturb = run_json([VENTRAL, "bench", "--perturb", "all", "--images", "200" if a.quick else "1000", "--json"])
    resnet_train = next(r for r in rows if r["model"] == "resnet20")["train"]["ventral"]
    loader_ratio = loader["images_per_s"] / resnet_train

    scaling_t, scaling_b = [], []
    if not a.quick:
        for t in (1, 2, 4, 8):
            scaling_t.append(run_json([VENTRAL, "bench", "--model", "cortical_blt", "--steps", str(t), "--batch",
                                       str(a.batch), "--iters", "10", "--threads", str(a.threads), "--json"]))
        for b in (32, 64, 128, 256):
            scaling_b.append(run_json([VENTRAL, "bench", "--model", "cortical_blt", "--batch", str(b), "--iters", "10",
                                       "--threads", str(a.threads), "--json"]))

    checks = []
    for m, kind, target in TARGETS:
        ratio = next(r for r in rows if r["model"] == m)[kind]["ratio"]
        checks.append((f"{kind} {m} >= {target}x python", ratio, ratio >= target))
    checks.append(("loader >= 10x resnet20 training rate", loader_ratio, loader_ratio >= 10))
    checks.append(("parameter counts equal on both sides", 1.0 if params_ok else 0.0, params_ok))

    mach = machine()
    bf16_hw = any(f in mach["isa"] for f in ("avx512_bf16", "amx_bf16"))
    lines = ["# ventral performance: ventral vs PyTorch-Python, measured in one run", "",
             f"Machine: {mach['cpu']}, {mach['cores']} cores, ISA {' '.join(mach['isa'])}; PyTorch {mach['torch']} "
             f"(Debian python3-torch, the libtorch ventral links); Linux {mach['kernel']}.",
             f"Generated by `bench/run{' --quick' if a.quick else ''}` on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} "
             f"in {time.time() - started:.0f} s: batch {a.batch}, {a.threads} threads, random 1x28x28 inputs, "
             f"{a.iters} timed iterations after 3 warm-up, median of {a.reps} interleaved repetitions.", "",
             "Training = forward + backward + SGD(momentum) step, loss summed over read-out steps; inference = eval mode "
             "under inference mode. `python` is the reference as PyTorch users run it (default NCHW layout); "
             "`python NHWC` is the same script with `--channels-last`, for reference. ventral uses its default layout "
             "(`memory_format: auto`).", "",
             "| model | params (ventral / python) | layout | train ventral | train python | ratio | train python NHWC | ratio | "
             "eval ventral | eval python | ratio | eval python NHWC | ratio |",
             "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        t, e = r["train"], r["eval"]
        lines.append(f"| {r['model']} | {r['params_ventral']:,} / {r['params_python']:,} | {r['memory_format']} | "
                     f"{t['ventral']:.0f} | {t['python']:.0f} | **{t['ratio']:.2f}x** | {t['python_cl']:.0f} | {t['ratio_cl']:.2f}x | "
                     f"{e['ventral']:.0f} | {e['python']:.0f} | **{e['ratio']:.2f}x** | {e['python_cl']:.0f} | {e['ratio_cl']:.2f}x |")
    lines += ["", "Images per second. Ratio = ventral / python.", "",
              "## What the default layout buys", "",
              "ventral's `memory_format: auto` runs channels-last (NHWC, oneDNN's blocked kernels) except for CORnet, "
              "whose wide layers run faster in NCHW. Same binary, forced NCHW (`--memory-format contiguous`):", "",
              "| model | train NHWC/auto | train NCHW | gain | eval NHWC/auto | eval NCHW | gain |", "|---|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        t, e = r["train"], r["eval"]
        lines.append(f"| {r['model']} | {t['ventral']:.0f} | {t['ventral_nchw']:.0f} | {t['ventral'] / t['ventral_nchw']:.2f}x | "
                     f"{e['ventral']:.0f} | {e['ventral_nchw']:.0f} | {e['ventral'] / e['ventral_nchw']:.2f}x |")
    lines += ["",
              ("Not kept: `precision: bf16` (autocast) needs AVX512-BF16 or AMX for a speed-up; this CPU's ISA list above "
               "has neither, so bf16 would run emulated and slower." if not bf16_hw else
               "This CPU has bf16 hardware (see the ISA list), but `precision: bf16` is not implemented yet.") +
              " Inference folds eval-mode batch norms into the convolutions before them (ResNets; folded afresh on "
              "every call, since LibTorch 1.13 gives a cache no reliable signal that the weights changed) and runs the residual sum and its ReLU as one in-place pass.", "",
              "## Data and perturbations", "",
              f"- Loader (Fashion-MNIST train, crop after 2-px padding + flip + random erasing + normalisation, "
              f"{loader['loader_threads']} loader thread(s), batch {loader['batch']}): **{loader['images_per_s']:.0f} images/s**, "
              f"{loader_ratio:.1f}x resnet20's training rate ({resnet_train:.0f} images/s).",
              f"- Perturbations (`ventral bench --perturb all`, {perturb['images']} images over 11 families x 5 severities, "
              f"all cores): **{perturb['images_per_s']:.0f} images/s** overall; slowest family "
              f"{min(perturb['families'], key=perturb['families'].get)} "
              f"({min(perturb['families'].values()):.0f} images/s), fastest "
              f"{max(perturb['families'], key=perturb['families'].get)} ({max(perturb['families'].values()):.0f} images/s)."]
    if scaling_t:
        lines += ["", "## Cortical BLT scaling (backpropagation through time)", "",
                  f"Training step, batch {a.batch}, against the number of steps T (peak = the process's maximum resident memory):", "",
                  "| T | ms per batch | train images/s | eval images/s | peak memory (MiB) |", "|---:|---:|---:|---:|---:|"]
        for s in scaling_t:
            lines.append(f"| {s['steps']} | {s['train_ms_per_batch']:.0f} | {s['train_images_per_s']:.0f} | "
                         f"{s['eval_images_per_s']:.0f} | {s['peak_rss_mib']:.0f} |")
        lines += ["", "Against batch size, T = 4:", "",
                  "| batch | ms per batch | train images/s | peak memory (MiB) |", "|---:|---:|---:|---:|"]
        for s in scaling_b:
            lines.append(f"| {s['batch']} | {s['train_ms_per_batch']:.0f} | {s['train_images_per_s']:.0f} | "
                         f"{s['peak_rss_mib']:.0f} |")
    lines += ["", "## Targets", "", "| check | measured | result |", "|---|---:|---|"]
    for name, value, ok in checks:
        lines.append(f"| {name} | {value:.2f} | {'PASS' if ok else 'FAIL'} |")
    lines += ["", "## Commands", "", "```", "bench/run            # this file", f"build/ventral bench --model resnet20 --batch {a.batch} --threads {a.threads}",
              f"/usr/bin/python3 bench/reference.py --model resnet20 --batch {a.batch} --threads {a.threads}",
              "build/ventral bench --loader", "build/ventral bench --perturb all --images 1000",
              "build/ventral bench --model cortical_blt --steps 8 --json", "```", ""]
    text = "\n".join(lines)
    tmp = a.out + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, a.out)
    print(text)
    print(f"wrote {a.out}", file=sys.stderr)
    sys.exit(0 if all(ok for _, _, ok in checks) else 1)


if __name__ == "__main__":
    main()
