#!/usr/bin/env python3
"""Side-by-side throughput: `ventral bench` vs bench/reference.py (the same architectures in
PyTorch-Python, same libtorch build, batch and threads), measured in one run, interleaved,
median of --reps repetitions. Also: the loader with augmentation against resnet20's training
rate, the perturbation library, and cortical BLT's time and peak memory against T and batch.
With bf16 hardware in /proc/cpuinfo (or --precision bf16) both sides also run in bf16 autocast.
Also: achieved GFLOP/s against a large 3x3 convolution's peak, fp32 and bf16.
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


# ventral sets these glibc malloc thresholds at start-up (cli/main.cpp mallopt); the Python side
# gets the same through the environment, like for like. Without them PyTorch-Python's training
# falls into a mode at about 40% of its rate on the AMD EPYC of RESULTS.md (large activations
# mmapped and unmapped every step), which made the medians overstate ventral's lead.
MALLOC_ENV = {"MALLOC_MMAP_THRESHOLD_": str(256 << 20), "MALLOC_TRIM_THRESHOLD_": str(1 << 30)}


def run_json(cmd):
    env = dict(os.environ, **MALLOC_ENV) if cmd[0].endswith("python3") else None
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, env=env).stdout
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


def bf16_hardware(isa):
    return next((f for f in ("amx_bf16", "avx512_bf16") if f in isa), "")


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--iters", type=int, default=10)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    p.add_argument("--precision", choices=["auto", "fp32", "bf16"], default="auto",
                   help="auto: fp32, plus bf16 on both sides when /proc/cpuinfo shows avx512_bf16 or amx_bf16; "
                        "bf16: fp32 plus bf16 whatever the flags (emulated bf16 is slow); fp32: fp32 only")
    p.add_argument("--quick", action="store_true", help="one repetition, few iterations, no scaling (a smoke run)")
    p.add_argument("--out", default=os.path.join(ROOT, "bench", "RESULTS.md"))
    a = p.parse_args()
    if a.quick:
        a.reps, a.iters = 1, 3
    started = time.time()
    mach = machine()
    hardware = bf16_hardware(mach["isa"])
    with_bf16 = a.precision == "bf16" or (a.precision == "auto" and hardware != "")
    common = ["--batch", str(a.batch), "--iters", str(a.iters), "--threads", str(a.threads), "--json"]
    sides = {
        "ventral": lambda m: [VENTRAL, "bench", "--model", m] + common,
        "ventral_nchw": lambda m: [VENTRAL, "bench", "--model", m, "--memory-format", "contiguous"] + common,
        "python": lambda m: ["/usr/bin/python3", REFERENCE, "--model", m] + common,
        "python_cl": lambda m: ["/usr/bin/python3", REFERENCE, "--model", m, "--channels-last"] + common,
    }
    if with_bf16:
        sides["ventral_bf16"] = lambda m: [VENTRAL, "bench", "--model", m, "--precision", "bf16"] + common
        sides["python_cl_bf16"] = lambda m: ["/usr/bin/python3", REFERENCE, "--model", m, "--channels-last",
                                             "--precision", "bf16"] + common
    peak_cmd = [VENTRAL, "bench", "--peak", "--batch", str(a.batch), "--iters", str(a.iters), "--threads", str(a.threads), "--json"]
    samples = {(m, s): [] for m in MODELS for s in sides}
    peaks = []
    for rep in range(a.reps):
        peaks.append(run_json(peak_cmd))
        for m in MODELS:
            for side, cmd in sides.items():  # interleaved: drifts in machine speed hit every side alike
                samples[(m, side)].append(run_json(cmd(m)))
                print(f"  rep {rep + 1}/{a.reps} {m:14s} {side:14s} train {samples[(m, side)][-1]['train_images_per_s']:7.1f}"
                      f"  eval {samples[(m, side)][-1]['eval_images_per_s']:7.1f} images/s", file=sys.stderr)
    peak = {k: statistics.median(p[k] for p in peaks) for k in ("fp32_gflops", "bf16_gflops")}

    def med(m, side, key):
        return statistics.median(s[key] for s in samples[(m, side)])

    rows, params_ok = [], True
    for m in MODELS:
        pv, pp = samples[(m, "ventral")][0]["params"], samples[(m, "python")][0]["params"]
        params_ok &= pv == pp
        r = {"model": m, "params_ventral": pv, "params_python": pp, "macs": samples[(m, "ventral")][0]["macs_per_image"]}
        for kind in ("train", "eval"):
            key = f"{kind}_images_per_s"
            r[kind] = {s: med(m, s, key) for s in sides}
            r[kind]["ratio"] = r[kind]["ventral"] / r[kind]["python"]
            r[kind]["ratio_cl"] = r[kind]["ventral"] / r[kind]["python_cl"]
            if with_bf16:
                r[kind]["ratio_cl_bf16"] = r[kind]["ventral_bf16"] / r[kind]["python_cl_bf16"]
                r[kind]["bf16_speedup"] = r[kind]["ventral_bf16"] / r[kind]["ventral"]
        r["memory_format"] = samples[(m, "ventral")][0]["memory_format"]
        rows.append(r)

    loader = run_json([VENTRAL, "bench", "--loader", "--batch", str(a.batch), "--json"])
    perturb = run_json([VENTRAL, "bench", "--perturb", "all", "--images", "200" if a.quick else "1000", "--json"])
    resnet_train = next(r for r in rows if r["model"] == "resnet20")["train"]["ventral"]
    loader_ratio = loader["images_per_s"] / resnet_train

    # Cortical BLT against T: per-work cost = ms per batch / (MACs per image x batch), relative to T = 2.
    scaling_t, scaling_b = {}, []
    if not a.quick:
        for precision in (["fp32", "bf16"] if with_bf16 else ["fp32"]):
            runs = {t: [] for t in range(1, 9)}
            for _ in range(2):  # interleaved over T, the faster of 2
                for t in runs:
                    runs[t].append(run_json([VENTRAL, "bench", "--model", "cortical_blt", "--steps", str(t), "--batch",
                                             str(a.batch), "--iters", "5", "--threads", str(a.threads), "--precision",
                                             precision, "--json"]))
            scaling_t[precision] = [min(v, key=lambda s: s["train_ms_per_batch"]) for v in runs.values()]
        for b in (32, 64, 128, 256):
            scaling_b.append(run_json([VENTRAL, "bench", "--model", "cortical_blt", "--batch", str(b), "--iters", "10",
                                       "--threads", str(a.threads), "--json"]))

    def per_work(s):  # picoseconds per multiply-accumulate of training work
        return s["train_ms_per_batch"] * 1e9 / (s["macs_per_image"] * s["batch"])

    checks = []
    for m, kind, target in TARGETS:
        ratio = next(r for r in rows if r["model"] == m)[kind]["ratio"]
        checks.append((f"{kind} {m} >= {target}x python (NCHW, fp32)", ratio, ratio >= target))
    for m in ("resnet20", "cortical_blt"):
        r = next(r for r in rows if r["model"] == m)
        for kind in ("train", "eval"):
            checks.append((f"{kind} {m} >= 1.2x python channels-last, fp32", r[kind]["ratio_cl"], r[kind]["ratio_cl"] >= 1.2))
            if with_bf16:
                v = r[kind]["ratio_cl_bf16"]
                checks.append((f"{kind} {m} >= 1.2x python channels-last, bf16 both", v, v >= 1.2))
    for precision, table in scaling_t.items():
        costs = [per_work(s) for s in table if s["steps"] >= 2]
        spread = max(costs) / min(costs)
        checks.append((f"BLT {precision} training cost per MAC flat within 15% for T = 2..8 (max/min)", spread, spread <= 1.15))
    checks.append(("loader >= 10x resnet20 training rate", loader_ratio, loader_ratio >= 10))
    checks.append(("parameter counts equal on both sides", 1.0 if params_ok else 0.0, params_ok))

    lines = ["# ventral performance: ventral vs PyTorch-Python, measured in one run", "",
             f"Machine: {mach['cpu']}, {mach['cores']} cores, ISA {' '.join(mach['isa'])}; PyTorch {mach['torch']} "
             f"(Debian python3-torch, the libtorch ventral links); Linux {mach['kernel']}.",
             f"Generated by `bench/run{' --quick' if a.quick else ''}` on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} "
             f"in {time.time() - started:.0f} s: batch {a.batch}, {a.threads} threads, random 1x28x28 inputs, "
             f"{a.iters} timed iterations after 3 warm-up, median of {a.reps} interleaved repetitions.", "",
             ("bf16: " + (f"this CPU has {hardware} (from /proc/cpuinfo), so both sides were also run in bf16: ventral "
                          "`precision: bf16` (LibTorch's CPU autocast) against PyTorch's `torch.autocast('cpu', "
                          "torch.bfloat16)`, both channels-last." if hardware else
                          "this CPU's flags show neither avx512_bf16 nor amx_bf16, so bf16 would run emulated "
                          "(slower than fp32)" + (": measured anyway (--precision bf16)." if with_bf16 else "; fp32 only."))), "",
             "Training = forward + backward + SGD(momentum) step, loss summed over read-out steps; inference = eval mode "
             "under inference mode. `python` is the reference as PyTorch users run it (default NCHW layout); "
             "`python NHWC` is the same script with `--channels-last`, as a speed-aware user runs it. ventral uses its "
             "default layout (`memory_format: auto`).", "",
             "## fp32", "",
             "| model | params (ventral / python) | layout | train ventral | train python | ratio | train python NHWC | ratio | "
             "eval ventral | eval python | ratio | eval python NHWC | ratio |",
             "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        t, e = r["train"], r["eval"]
        lines.append(f"| {r['model']} | {r['params_ventral']:,} / {r['params_python']:,} | {r['memory_format']} | "
                     f"{t['ventral']:.0f} | {t['python']:.0f} | **{t['ratio']:.2f}x** | {t['python_cl']:.0f} | {t['ratio_cl']:.2f}x | "
                     f"{e['ventral']:.0f} | {e['python']:.0f} | **{e['ratio']:.2f}x** | {e['python_cl']:.0f} | {e['ratio_cl']:.2f}x |")
    lines += ["", "Images per second. Ratio = ventral / python."]
    if with_bf16:
        lines += ["", "## bf16", "",
                  "Both sides in bf16 autocast and channels-last; `speed-up` = ventral bf16 / ventral fp32 (table above).", "",
                  "| model | train ventral bf16 | speed-up | train python NHWC bf16 | ratio | eval ventral bf16 | speed-up | "
                  "eval python NHWC bf16 | ratio |", "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for r in rows:
            t, e = r["train"], r["eval"]
            lines.append(f"| {r['model']} | {t['ventral_bf16']:.0f} | {t['bf16_speedup']:.2f}x | {t['python_cl_bf16']:.0f} | "
                         f"**{t['ratio_cl_bf16']:.2f}x** | {e['ventral_bf16']:.0f} | {e['bf16_speedup']:.2f}x | "
                         f"{e['python_cl_bf16']:.0f} | **{e['ratio_cl_bf16']:.2f}x** |")
    lines += ["", "## How close to the machine's limit", "",
              f"Peak: a 3x3 convolution, 64 -> 64 channels, 28x28, batch {a.batch}, channels-last, forward only "
              f"(`ventral bench --peak`): **{peak['fp32_gflops']:.0f} GFLOP/s fp32**, **{peak['bf16_gflops']:.0f} GFLOP/s "
              f"bf16** ({peak['bf16_gflops'] / peak['fp32_gflops']:.2f}x). Achieved = 2 x MACs per image x images/s "
              "(x 3 for a training step: forward and the two gradient products), as a share of the peak of the same precision.", "",
              "| model | MMACs per image | train fp32 GFLOP/s | of peak | eval fp32 GFLOP/s | of peak |" +
              (" train bf16 GFLOP/s | of peak | eval bf16 GFLOP/s | of peak |" if with_bf16 else ""),
              "|---|---:|---:|---:|---:|---:|" + ("---:|---:|---:|---:|" if with_bf16 else "")]
    for r in rows:
        g = {(k, s): 2 * r["macs"] * r[k][s] * (3 if k == "train" else 1) / 1e9
             for k in ("train", "eval") for s in (["ventral", "ventral_bf16"] if with_bf16 else ["ventral"])}
        line = (f"| {r['model']} | {r['macs'] / 1e6:.1f} | {g[('train', 'ventral')]:.0f} | {g[('train', 'ventral')] / peak['fp32_gflops']:.0%} | "
                f"{g[('eval', 'ventral')]:.0f} | {g[('eval', 'ventral')] / peak['fp32_gflops']:.0%} |")
        if with_bf16:
            line += (f" {g[('train', 'ventral_bf16')]:.0f} | {g[('train', 'ventral_bf16')] / peak['bf16_gflops']:.0%} | "
                     f"{g[('eval', 'ventral_bf16')]:.0f} | {g[('eval', 'ventral_bf16')] / peak['bf16_gflops']:.0%} |")
        lines.append(line)
    lines += ["", "## What the default layout buys", "",
              "ventral's `memory_format: auto` runs channels-last (NHWC, oneDNN's blocked kernels) except for CORnet, "
              "whose wide layers run faster in NCHW. Same binary, forced NCHW (`--memory-format contiguous`):", "",
              "| model | train NHWC/auto | train NCHW | gain | eval NHWC/auto | eval NCHW | gain |", "|---|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        t, e = r["train"], r["eval"]
        lines.append(f"| {r['model']} | {t['ventral']:.0f} | {t['ventral_nchw']:.0f} | {t['ventral'] / t['ventral_nchw']:.2f}x | "
                     f"{e['ventral']:.0f} | {e['ventral_nchw']:.0f} | {e['ventral'] / e['ventral_nchw']:.2f}x |")
    lines += ["",
              "Inference folds eval-mode batch norms into the convolutions before them (ResNets; folded afresh on "
              "every call, since LibTorch 1.13 gives a cache no reliable signal that the weights changed) and runs "
              "each convolution through oneDNN with its batch norm, drive sum, residual and ReLU as post-ops, in fp32 "
              "and, where oneDNN runs bf16 convolutions on the CPU, in bf16 (`--fused off` measures LibTorch's path; "
              "`bench/fused` compares the two).", "",
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
                  f"Training step, batch {a.batch}, against the number of steps T, best of 2 interleaved runs. Cost per "
                  "work = ms per batch / (MACs per image x batch), in picoseconds per multiply-accumulate; relative to T = 2 "
                  "(T = 1 has no lateral or top-down convolutions and runs the smallest layers only). Peak = the process's "
                  "maximum resident memory.", ""]
        for precision, table in scaling_t.items():
            base = per_work(next(s for s in table if s["steps"] == 2))
            lines += [f"{precision}:", "", "| T | MMACs per image | ms per batch | ps per MAC | relative to T = 2 | eval images/s | peak memory (MiB) |",
                      "|---:|---:|---:|---:|---:|---:|---:|"]
            for s in table:
                lines.append(f"| {s['steps']} | {s['macs_per_image'] / 1e6:.1f} | {s['train_ms_per_batch']:.0f} | "
                             f"{per_work(s):.1f} | {per_work(s) / base:.2f} | {s['eval_images_per_s']:.0f} | {s['peak_rss_mib']:.0f} |")
            lines.append("")
        lines += ["Against batch size, T = 4, fp32:", "",
                  "| batch | ms per batch | train images/s | peak memory (MiB) |", "|---:|---:|---:|---:|"]
        for s in scaling_b:
            lines.append(f"| {s['batch']} | {s['train_ms_per_batch']:.0f} | {s['train_images_per_s']:.0f} | "
                         f"{s['peak_rss_mib']:.0f} |")
    lines += ["", "## Targets", "", "| check | measured | result |", "|---|---:|---|"]
    for name, value, ok in checks:
        lines.append(f"| {name} | {value:.2f} | {'PASS' if ok else 'FAIL'} |")
    lines += ["", "## Commands", "", "```", "bench/run            # this file", f"build/ventral bench --model resnet20 --batch {a.batch} --threads {a.threads}",
              f"build/ventral bench --model resnet20 --precision bf16",
              f"/usr/bin/python3 bench/reference.py --model resnet20 --batch {a.batch} --threads {a.threads} --channels-last --precision bf16",
              "build/ventral bench --peak", "build/ventral bench --loader", "build/ventral bench --perturb all --images 1000",
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
