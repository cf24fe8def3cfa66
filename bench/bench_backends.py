"""TensorFlow vs JAX vs torch on this machine: seconds per ARN training step (all four players) and PGD_N
throughput.

Keras fixes its backend per process, so each backend runs in a child process; the rounds alternate the backends
(TF, JAX, torch, TF, ...) and the table keeps each one's best round, so a busy moment hurts no side alone.
Inputs are random (the cost does not depend on them); PGD_N runs its 40 MNIST iterations against an untrained
paper LeNet-5.

    python bench/bench_backends.py                       # tiny and default widths, batch 64 x K=2, 2 rounds
    python bench/bench_backends.py --presets large --rounds 3 --backends tensorflow jax
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

_CHILD = r"""
import json, sys, time
import numpy as np
import keras
from arnkit.defenses.arn import ARN, ARNConfig

presets, batch, steps, pgd_images = json.loads(sys.argv[1])
backend = keras.backend.backend()
rng = np.random.default_rng(0)
x_adv = rng.random((batch, 2, 28, 28, 1), dtype=np.float32)
x_nat = rng.random((batch, 28, 28, 1), dtype=np.float32)
out = {"backend": backend}
for preset in presets:
    keras.utils.set_random_seed(0)
    arn = ARN(image_shape=(28, 28, 1), num_attacks=2, config=ARNConfig.for_dataset("mnist", preset=preset))
    arn.compile()
    if backend != "tensorflow":
        from arnkit.defenses.arn import trainer_for
        trainer = trainer_for(arn, seed=0)                    # JaxTrainer or TorchTrainer
        step = lambda: trainer.train_step(x_adv, x_nat)        # returns host floats: it waits for the step
    else:
        import tensorflow as tf
        data = {"adversarial": tf.constant(x_adv), "natural": tf.constant(x_nat)}
        fn = tf.function(arn.train_step)
        step = lambda: float(fn(data)["e_loss"])
    step(); step()                                            # compile, warm up
    start = time.perf_counter()
    for _ in range(steps):
        step()
    out[f"arn_{preset}_s"] = (time.perf_counter() - start) / steps

from arnkit import attacks
from arnkit.models import build
model = build("lenet", (28, 28, 1), 10)
x = rng.random((pgd_images, 28, 28, 1), dtype=np.float32)
y = rng.integers(0, 10, pgd_images)
attack = attacks.make("pgd_n", dataset="mnist")
attack(model, x[:32], y[:32], seed=0)                         # compile
start = time.perf_counter()
attack(model, x, y, seed=0)
out["pgd_n_img_s"] = pgd_images / (time.perf_counter() - start)
print("RESULT " + json.dumps(out))
"""


def run_child(backend: str, args: argparse.Namespace) -> dict:
    env = {**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "3", "JAX_PLATFORMS": "cpu"}
    spec = json.dumps([args.presets, args.batch, args.steps, args.pgd_images])
    done = subprocess.run([sys.executable, "-c", _CHILD, spec], env=env, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"{backend} child failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.split("RESULT ", 1)[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--presets", nargs="+", default=["tiny", "default"])
    parser.add_argument("--batch", type=int, default=64, help="natural images per step (each with K=2 attacks)")
    parser.add_argument("--steps", type=int, default=10, help="timed ARN steps per preset")
    parser.add_argument("--pgd-images", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--backends", nargs="+", default=["tensorflow", "jax", "torch"],
                        help="tensorflow first: the ratios are against it")
    args = parser.parse_args()
    others = [b for b in args.backends if b != "tensorflow"]

    best: dict[str, dict[str, float]] = {}
    for _ in range(args.rounds):
        for backend in ["tensorflow", *others]:
            result = run_child(backend, args)
            mine = best.setdefault(backend, {})
            for key, value in result.items():
                if key == "backend":
                    continue
                better = max if key.endswith("img_s") else min
                mine[key] = better(mine.get(key, value), value)
    print(f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {os.cpu_count()} CPUs, best of {args.rounds} "
          f"alternating rounds, batch {args.batch} x K=2, {args.steps} timed steps")
    names = ["tensorflow", *others]
    print("| measure | " + " | ".join(names) + " | " + " | ".join(f"{b} / tensorflow time" for b in others) + " |")
    print("|---" * (len(names) + len(others) + 1) + "|")
    for preset in args.presets:
        secs = [best[b][f"arn_{preset}_s"] for b in names]
        print(f"| ARN step, {preset} width (s) | " + " | ".join(f"{v:.4f}" for v in secs) + " | "
              + " | ".join(f"{v / secs[0]:.2f}x" for v in secs[1:]) + " |")
    rates = [best[b]["pgd_n_img_s"] for b in names]
    print(f"| PGD_N, 40 steps, {args.pgd_images} images (img/s) | " + " | ".join(f"{v:.1f}" for v in rates) + " | "
          + " | ".join(f"{rates[0] / v:.2f}x" for v in rates[1:]) + " |")


if __name__ == "__main__":
    main()
