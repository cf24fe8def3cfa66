"""Speed of arnkit's pixel-constrained attacks against cleverhans 4, on the paper's LeNet and MNIST.

One run, one machine, one batch: PGD-40 (eps .3, step .01, random start) img/s for arnkit (float32, and the
opt-in bfloat16 gradients) and for cleverhans's `projected_gradient_descent` wrapped in `tf.function`; CW-L2 img/s, success and mean L2 for arnkit's default
(`cw_n`: 60 Adam steps at lr .2 x 4 search steps), arnkit at ARN's settings (500 steps at lr 1e-2 x 4) and
cleverhans's `carlini_wagner_l2` at ARN's settings (it fails under Keras 3: the error is shown, then a one-line
shim is applied); DDN-100 img/s. Every pair is timed interleaved (A B A B ...) after a warm-up call each, and a
ratio is the median over repetitions of the per-repetition ratio. Prints a markdown table.

    TF_CPP_MIN_LOG_LEVEL=2 .venv/bin/python bench/bench_pixel_attacks.py            # ~30 min on 2 shared cores

The LeNet (conv 32-64, fc 200) is trained for `--epochs` epochs with Adam 1e-3, batch 128, and its weights are
cached under /tmp/arnkit_bench so later runs skip training.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import arnkit  # noqa: E402,F401  (first: it turns oneDNN on before TensorFlow loads)

# isort: split
import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from arnkit import data  # noqa: E402
from arnkit.attacks import make  # noqa: E402
from arnkit.attacks.base import norms  # noqa: E402
from arnkit.attacks.cw import ARN_MNIST  # noqa: E402
from arnkit.models import build  # noqa: E402

CACHE = Path("/tmp/arnkit_bench")


def trained_lenet(epochs: int = 1, seed: int = 0) -> keras.Model:
    """The paper's LeNet trained on all of MNIST train for `epochs` epochs (Adam 1e-3, batch 128), cached."""
    model = build("lenet", (28, 28, 1), 10)
    weights = CACHE / f"lenet_mnist_e{epochs}_s{seed}.weights.h5"
    if weights.exists():
        model.load_weights(weights)
        return model
    keras.utils.set_random_seed(seed)
    x_train, y_train, _ = data.load_arrays("mnist", "train")
    model.compile(optimizer=keras.optimizers.Adam(1e-3),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    start = time.perf_counter()
    model.fit(x_train, y_train, epochs=epochs, batch_size=128, verbose=0)
    print(f"trained LeNet for {epochs} epoch(s) in {time.perf_counter() - start:.0f} s")
    CACHE.mkdir(parents=True, exist_ok=True)
    partial = weights.with_name(weights.stem + ".partial.weights.h5")
    model.save_weights(partial)
    partial.replace(weights)
    return model


def accuracy(model: keras.Model, x: np.ndarray, y: np.ndarray) -> float:
    return float(np.mean(np.argmax(model.predict(x, batch_size=1000, verbose=0), -1) == y))


class Timing:
    """Wall-clock img/s and process CPU seconds per image. On a shared machine the CPU time is the steadier
    measure of work; the wall clock is what a user waits."""

    def __init__(self, n_images: int) -> None:
        self.n_images = n_images
        self.walls: list[float] = []
        self.cpus: list[float] = []
        self.first_call_s = float("nan")  # the first call also traces the tf.function graphs

    def measure(self, fn: Callable[[], object]) -> object:
        wall, cpu = time.perf_counter(), time.process_time()
        out = fn()
        self.walls.append(time.perf_counter() - wall)
        self.cpus.append(time.process_time() - cpu)
        return out

    @property
    def rate(self) -> float:  # median img/s
        return self.n_images / statistics.median(self.walls)

    @property
    def cpu_ms_per_image(self) -> float:  # median
        return 1000.0 * statistics.median(self.cpus) / self.n_images

    def speedup_over(self, other: Timing) -> tuple[float, float, list[float]]:
        """Median over repetitions of other's time / this time (wall, CPU), and the per-repetition wall ratios.
        Repetition i of both was measured back to back, under the same load."""
        wall = [theirs / ours for ours, theirs in zip(self.walls, other.walls, strict=True)]
        cpu = [theirs / ours for ours, theirs in zip(self.cpus, other.cpus, strict=True)]
        return statistics.median(wall), statistics.median(cpu), wall


def interleaved(fns: dict[str, Callable[[], object]], n_images: int, repeats: int) -> dict[str, Timing]:
    """Time each function `repeats` times in turns (after one warm-up call each, which also traces it), so
    that load from other users of the machine falls on all of them alike."""
    timings = {name: Timing(n_images) for name in fns}
    for name, fn in fns.items():
        start = time.perf_counter()
        fn()
        timings[name].first_call_s = time.perf_counter() - start
    for _ in range(repeats):
        for name, fn in fns.items():
            timings[name].measure(fn)
    return timings


def cleverhans_pgd(model: keras.Model, eps: float, step: float, steps: int):
    from cleverhans.tf2.attacks.projected_gradient_descent import projected_gradient_descent

    @tf.function(reduce_retracing=True)
    def attack(x, y):
        return projected_gradient_descent(model, x, eps, step, steps, np.inf, clip_min=0.0, clip_max=1.0, y=y,
                                          rand_init=True, sanity_checks=False)

    return attack


class _Keras3AdamShim:
    """cleverhans 4 calls `optimizer.variables()` to zero the Adam state between search steps; in Keras 3
    `variables` is a list property that also holds the learning rate. Zeroing the learning rate would make
    the attack silently do nothing, so only the step counter and the moment slots are handed out."""

    def __init__(self, optimizer: keras.optimizers.Optimizer) -> None:
        self._optimizer = optimizer

    def variables(self) -> list:
        return [v for v in self._optimizer.variables if "learning_rate" not in v.path]

    def apply_gradients(self, grads_and_vars) -> None:
        self._optimizer.apply_gradients(grads_and_vars)


def cleverhans_cw(model: keras.Model, x: np.ndarray, *, shim: bool, steps: int = 500,
                  learning_rate: float = 1e-2) -> np.ndarray:
    """cleverhans's CW-L2, by default at ARN's settings (500 steps, 4 search steps, confidence 1, c0 1, lr 1e-2)."""
    from cleverhans.tf2.attacks.carlini_wagner_l2 import CarliniWagnerL2

    attack = CarliniWagnerL2(model, batch_size=len(x), clip_min=0.0, clip_max=1.0, max_iterations=steps,
                             binary_search_steps=4, confidence=1.0, initial_const=1.0, learning_rate=learning_rate,
                             abort_early=True)
    if shim:
        attack.optimizer = _Keras3AdamShim(attack.optimizer)
    return attack.attack(x)


def l2_summary(model: keras.Model, x: np.ndarray, y: np.ndarray, x_adv: np.ndarray) -> tuple[float, float]:
    """(success rate against the true label, mean L2 over the successful examples)."""
    success = np.argmax(model.predict(x_adv, batch_size=1000, verbose=0), -1) != y
    l2 = norms(x, x_adv)["l2"]
    return float(success.mean()), float(l2[success].mean()) if success.any() else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=256)
    parser.add_argument("--cw-images", type=int, default=None, help="CW on the first N of the batch (default all)")
    parser.add_argument("--repeats", type=int, default=5, help="PGD repetitions")
    parser.add_argument("--cw-repeats", type=int, default=3, help="CW repetitions (cleverhans: ~2-3 min each)")
    parser.add_argument("--skip-arn-settings", action="store_true", help="skip arnkit CW at ARN's 500x4 settings")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--skip-cleverhans-cw", action="store_true")
    parser.add_argument("--pgd-only", action="store_true", help="stop after the PGD rows")
    args = parser.parse_args()

    model = trained_lenet(args.epochs)
    x, y, _ = data.load_arrays("mnist", "test", limit=args.images)
    n = len(x)
    print(f"# Pixel attacks, paper LeNet ({args.epochs} epoch(s), clean accuracy on these {n}: "
          f"{accuracy(model, x, y):.3f}); {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} cores, tensorflow {tf.__version__}, keras {keras.__version__}\n")
    rows = []

    # PGD-40: both libraries, interleaved.
    ours_pgd = make("pgd_n", dataset="mnist")
    theirs_pgd = cleverhans_pgd(model, 0.3, 0.01, 40)
    xt, yt = tf.constant(x), tf.constant(y)
    results = {}

    def run_ours():
        results["ours"] = ours_pgd(model, x, y, seed=0).x_adv

    def run_theirs():
        results["theirs"] = theirs_pgd(xt, yt).numpy()

    def run_ours_attack_only():  # the same work as cleverhans: no input checks, no scoring pass
        ours_pgd.run(model, xt, yt, None, seed=0, batch=0).numpy()

    bf16_pgd = make("pgd_n", dataset="mnist", precision="bfloat16")

    def run_ours_bf16():
        results["bf16"] = bf16_pgd(model, x, y, seed=0).x_adv

    timing = interleaved({"arnkit": run_ours, "arnkit_run": run_ours_attack_only, "arnkit_bf16": run_ours_bf16,
                          "cleverhans": run_theirs}, n, args.repeats)
    speed = {}
    for lib in timing:
        wall, cpu, per_rep = timing[lib].speedup_over(timing["cleverhans"])
        speed[lib] = (f"{wall:.2f}x cleverhans wall ({'/'.join(f'{r:.2f}' for r in per_rep)}), {cpu:.2f}x CPU")
    labels = (("arnkit", "arnkit"), ("arnkit_run", "arnkit, `run` only"),
              ("arnkit_bf16", "arnkit, opt-in `precision=bfloat16`"), ("cleverhans", "cleverhans"))
    kept = {"arnkit": "ours", "arnkit_bf16": "bf16", "cleverhans": "theirs"}
    for lib, label in labels:
        row = [f"PGD-40 Linf .3 ({label})", n, f"{timing[lib].rate:.1f}", f"{timing[lib].cpu_ms_per_image:.1f}"]
        if lib == "arnkit_run":
            row += ["", "", speed[lib]]
        else:
            success, l2 = l2_summary(model, x, y, results[kept[lib]])
            row += [f"{success:.3f}", f"{l2:.2f}", speed[lib] if lib != "cleverhans" else ""]
        row[-1] = (row[-1] + "; " if row[-1] else "") + f"first call {timing[lib].first_call_s:.1f} s"
        rows.append(row)
    print(f"PGD timings are medians of {args.repeats} interleaved runs after a first (tracing) call.")
    if args.pgd_only:
        print_table(rows)
        return

    # CW-L2: arnkit's default, arnkit at ARN's settings, cleverhans at ARN's settings; interleaved.
    m = args.cw_images or n
    x_cw, y_cw = x[:m], y[:m]
    if not args.skip_cleverhans_cw:
        try:
            cleverhans_cw(model, x_cw[:4], shim=False)
            note = "ran without a shim"
        except Exception as exc:  # shown verbatim: this is the Keras 3 incompatibility being documented
            note = f"fails unpatched: {type(exc).__name__}: {exc}"
        print(f"cleverhans carlini_wagner_l2 {note}")
    cw_runs = {"arnkit": make("cw_n", dataset="mnist")}
    if not args.skip_arn_settings:
        cw_runs["arnkit_arn"] = make("cw_n", dataset="mnist", **ARN_MNIST)
    cw_out: dict[str, np.ndarray] = {}

    def cw_call(key: str) -> Callable[[], object]:
        if key == "cleverhans":
            return lambda: cw_out.__setitem__(key, cleverhans_cw(model, x_cw, shim=True))
        if key == "cleverhans_short":  # cleverhans at arnkit's default schedule: the per-iteration comparison
            default = cw_runs["arnkit"]
            return lambda: cw_out.__setitem__(key, cleverhans_cw(model, x_cw, shim=True, steps=default.steps,
                                                                 learning_rate=default.learning_rate))
        return lambda: cw_out.__setitem__(key, cw_runs[key](model, x_cw, y_cw, seed=0).x_adv)

    keys = list(cw_runs) + ([] if args.skip_cleverhans_cw else ["cleverhans", "cleverhans_short"])
    # Warm-up: trace arnkit's graphs with a 1-step run on the batch shape; cleverhans's first repetition
    # includes its (small) tracing, as it did in earlier versions of this bench.
    make("cw_n", dataset="mnist", steps=1, binary_search_steps=1)(model, x_cw, y_cw)
    cw_timing = {key: Timing(m) for key in keys}
    for _ in range(args.cw_repeats):
        for key in keys:
            cw_timing[key].measure(cw_call(key))
    default = cw_runs["arnkit"]
    schedule = f"{default.steps}x{default.binary_search_steps} lr {default.learning_rate:g}"
    labels = {"arnkit": f"CW-L2 {schedule} (arnkit default)", "arnkit_arn": "CW-L2 500x4 lr 1e-2 (arnkit, ARN settings)",
              "cleverhans": "CW-L2 500x4 lr 1e-2 (cleverhans + Keras 3 shim)",
              "cleverhans_short": f"CW-L2 {schedule} (cleverhans + Keras 3 shim)"}
    for key in keys:
        success, l2 = l2_summary(model, x_cw, y_cw, cw_out[key])
        note = ""
        if key.startswith("arnkit") and "cleverhans" in cw_timing:
            wall, cpu, per_rep = cw_timing[key].speedup_over(cw_timing["cleverhans"])
            note = (f"{wall:.1f}x cleverhans 500x4 wall ({'/'.join(f'{r:.1f}' for r in per_rep)}), "
                    f"{cpu:.1f}x CPU")
            if key == "arnkit":
                wall, cpu, _ = cw_timing[key].speedup_over(cw_timing["cleverhans_short"])
                note += f"; {wall:.1f}x cleverhans at the same schedule wall, {cpu:.1f}x CPU"
        rows.append([labels[key], m, f"{cw_timing[key].rate:.2f}", f"{cw_timing[key].cpu_ms_per_image:.0f}",
                     f"{success:.3f}", f"{l2:.2f}", note])
    print(f"CW timings are medians of {args.cw_repeats} interleaved runs.")

    # DDN-100.
    make("ddn_n", dataset="mnist", steps=1)(model, x, y)
    ddn = Timing(n)
    ddn_result = ddn.measure(lambda: make("ddn_n", dataset="mnist")(model, x, y, seed=0))
    success, l2 = l2_summary(model, x, y, ddn_result.x_adv)
    rows.append(["DDN-100 (arnkit)", n, f"{ddn.rate:.1f}", f"{ddn.cpu_ms_per_image:.1f}", f"{success:.3f}",
                 f"{l2:.2f}", ""])

    print_table(rows)


def print_table(rows: list[list]) -> None:
    print("\n| attack | images | img/s | CPU ms/img | success | mean L2 of successes | note |")
    print("|---|---|---|---|---|---|---|")
    for row in rows:
        print("| " + " | ".join(str(c) for c in row) + " |")


if __name__ == "__main__":
    main()
