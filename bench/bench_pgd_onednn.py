"""PGD-40 on the paper's LeNet at batch 256: arnkit vs cleverhans, with and without oneDNN, and the fraction
of this machine's measured fp32 peak that each reaches.

oneDNN is chosen when TensorFlow is imported, so each setting runs in a child process of this one command:
`eigen` (TF_ENABLE_ONEDNN_OPTS=0, the default on AVX2-only CPUs before arnkit turned oneDNN on),
`onednn-avx2` (oneDNN with its ISA capped at AVX2, what an AVX2-only CPU runs now) and `onednn` (this CPU's
own best ISA). In each child, arnkit's PGD and cleverhans's `projected_gradient_descent` in `tf.function` are
timed interleaved (A B A B, after a warm-up call each), and the peak is a 4096 x 4096 fp32 matmul in the same
process. FLOPs per image-step are counted from the LeNet's layers: forward + the input gradient (each layer's
input gradient costs its forward's multiply-adds; no filter gradients), 2 FLOPs per multiply-add.

    .venv/bin/python bench/bench_pgd_onednn.py [--repeats 5] [--settings eigen onednn-avx2 onednn]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

SETTINGS = {"eigen": {"TF_ENABLE_ONEDNN_OPTS": "0"},
            "onednn-avx2": {"TF_ENABLE_ONEDNN_OPTS": "1", "ONEDNN_MAX_CPU_ISA": "AVX2"},
            "onednn": {"TF_ENABLE_ONEDNN_OPTS": "1"}}


def lenet_macs_per_image(model) -> int:
    """Multiply-adds of one forward pass, from each Conv2D / Dense layer's shapes."""
    import keras

    total = 0
    for layer in model.layers:
        if isinstance(layer, keras.layers.Conv2D):
            _, h, w, c_out = layer.output.shape
            kh, kw, c_in, _ = layer.kernel.shape
            total += h * w * c_out * kh * kw * c_in
        elif isinstance(layer, keras.layers.Dense):
            c_in, c_out = layer.kernel.shape
            total += c_in * c_out
    return int(total)


def child(repeats: int) -> dict:
    import tensorflow as tf
    from bench_pixel_attacks import cleverhans_pgd, interleaved, trained_lenet

    from arnkit import data, runtime
    from arnkit.attacks import make

    model = trained_lenet(1)
    x, y, _ = data.load_arrays("mnist", "test", limit=256)
    attack = make("pgd_n", dataset="mnist")
    ch = cleverhans_pgd(model, 0.3, 0.01, 40)
    xt, yt = tf.constant(x), tf.constant(y)
    timings = interleaved({"arnkit": lambda: attack(model, x, y, seed=0),
                           "cleverhans": lambda: ch(xt, yt).numpy()}, len(x), repeats)
    a = tf.random.uniform((4096, 4096))
    (a @ a).numpy()
    peaks = []
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(4):
            out = a @ a
        out.numpy()
        peaks.append(4 * 2 * 4096**3 / (time.perf_counter() - start) / 1e9)
    flops_step = 2 * 2 * lenet_macs_per_image(model)  # forward + input gradient, 2 FLOPs per multiply-add
    peak = max(peaks)
    out = {"runtime": runtime.describe(), "peak_matmul_gflops": round(peak, 1),
           "lenet_flops_per_image_step": flops_step}
    ratio_wall, ratio_cpu, per_rep = timings["arnkit"].speedup_over(timings["cleverhans"])
    for name, t in timings.items():
        gflops = t.rate * 40 * flops_step / 1e9
        out[name] = {"img_per_s": round(t.rate, 1), "cpu_ms_per_img": round(t.cpu_ms_per_image, 2),
                     "gflops": round(gflops, 1), "fraction_of_peak": round(gflops / peak, 3),
                     "walls": [round(w, 3) for w in t.walls]}
    out["arnkit_over_cleverhans"] = {"wall": round(ratio_wall, 3), "cpu": round(ratio_cpu, 3),
                                     "per_repetition": [round(r, 3) for r in per_rep]}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--settings", nargs="+", default=list(SETTINGS), choices=list(SETTINGS))
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print("RESULT " + json.dumps(child(args.repeats)))
        return
    results = {}
    for name in args.settings:
        env = {**{k: v for k, v in os.environ.items() if k not in ("TF_ENABLE_ONEDNN_OPTS", "ONEDNN_MAX_CPU_ISA")},
               "TF_CPP_MIN_LOG_LEVEL": "3", **SETTINGS[name]}
        done = subprocess.run([sys.executable, __file__, "--child", "--repeats", str(args.repeats)], env=env,
                              capture_output=True, text=True)
        if done.returncode != 0:
            sys.exit(f"{name}: {done.stderr[-2000:]}")
        results[name] = json.loads(done.stdout.split("RESULT ", 1)[1])
        print(name, json.dumps(results[name]), flush=True)
    print(json.dumps({"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "results": results}, indent=1))
    print("\n| setting | library | img/s | CPU ms/img | GFLOP/s | of peak | peak matmul GFLOP/s | arnkit / cleverhans (wall, CPU) |")
    print("|---|---|---|---|---|---|---|---|")
    base = results.get("eigen", {}).get("arnkit", {}).get("img_per_s")
    for name, r in results.items():
        for lib in ("arnkit", "cleverhans"):
            t = r[lib]
            ratio = (f"{r['arnkit_over_cleverhans']['wall']}x, {r['arnkit_over_cleverhans']['cpu']}x "
                     f"({'/'.join(map(str, r['arnkit_over_cleverhans']['per_repetition']))})") if lib == "arnkit" else "-"
            print(f"| {name} | {lib} | {t['img_per_s']} | {t['cpu_ms_per_img']} | {t['gflops']} | "
                  f"{100 * t['fraction_of_peak']:.0f}% | {r['peak_matmul_gflops']} | {ratio} |")
    if base:
        for name, r in results.items():
            print(f"{name}: arnkit {r['arnkit']['img_per_s'] / base:.2f}x eigen arnkit; median of "
                  f"{statistics.median(r['arnkit']['walls']):.3f} s per 256-image call")


if __name__ == "__main__":
    main()
