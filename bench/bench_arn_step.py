"""Seconds per ARN training step (Algorithm 1: all four networks) for each width preset and objective.

MNIST shape (28x28x1), K = 2 seen attacks. The paper objective feeds E the 2 x batch adversarial images; the
reference objective adds the natural ones as a third domain (3 x batch) and a gradient penalty, as the
official code does. Inputs are random: the cost does not depend on them.

    python bench/bench_arn_step.py                          # every preset, both objectives, batch 64
    python bench/bench_arn_step.py --presets default large --objectives paper --batch 300
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def time_step(preset: str, objective: str, batch: int, steps: int, warmup: int = 2) -> tuple[float, int, int]:
    import keras

    from arnkit.defenses.arn import ARN, ARNConfig

    keras.utils.set_random_seed(0)
    config = ARNConfig.for_dataset("mnist", objective=objective, preset=preset)
    arn = ARN(image_shape=(28, 28, 1), num_attacks=2, config=config)
    seconds = seconds_per_step(arn, batch, steps, warmup)
    params = sum(net.count_params() for net in (arn.encoder, arn.decoder, arn.attack_discriminator,
                                                  arn.image_discriminator))
    return seconds, params, arn.num_domains * batch


def seconds_per_step(arn, batch: int, steps: int, warmup: int = 2) -> float:
    """Compile `arn` and time its graph train_step on random 28x28 MNIST-shaped batches (after `warmup` steps)."""
    import numpy as np
    import tensorflow as tf

    arn.compile()
    rng = np.random.default_rng(0)
    data = {"adversarial": tf.constant(rng.random((batch, 2, 28, 28, 1), dtype=np.float32)),
            "natural": tf.constant(rng.random((batch, 28, 28, 1), dtype=np.float32))}
    step = tf.function(arn.train_step)
    for _ in range(warmup):
        step(data)["e_loss"].numpy()
    start = time.perf_counter()
    for _ in range(steps):
        out = step(data)
    out["e_loss"].numpy()
    return (time.perf_counter() - start) / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--presets", nargs="+", default=["tiny", "default", "large", "reference"])
    parser.add_argument("--objectives", nargs="+", default=["paper", "reference"], choices=["paper", "reference"])
    parser.add_argument("--batch", type=int, default=64, help="natural images per step (each with K=2 attacks)")
    parser.add_argument("--steps", type=int, default=10, help="timed steps (the reference preset uses a third)")
    args = parser.parse_args()

    import tensorflow as tf

    print(f"tensorflow {tf.__version__}, {os.cpu_count()} CPUs, batch {args.batch} natural images x K=2 attacks, 28x28x1")
    print("| preset | objective | images through E+G per step | s/step | images/s | parameters |")
    print("|---|---|---|---|---|---|")
    for preset in args.presets:
        for objective in args.objectives:
            steps = max(2, args.steps // 3) if preset == "reference" else args.steps
            seconds, params, images = time_step(preset, objective, args.batch, steps)
            print(f"| {preset} | {objective} | {images} | {seconds:.3f} | {images / seconds:.0f} | {params:,} |",
                  flush=True)


if __name__ == "__main__":
    main()
