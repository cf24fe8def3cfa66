"""Seconds per ARN training step with issue 29's two levers, each alone and together, beside today's default.

What it measures: one compiled TensorFlow `train_step` (all four players) at MNIST shape (28x28x1), K = 2 seen
attacks, batch 64, for: the paper's G; the residual U-Net G (`generator="residual_unet"`); `--adaptive` with the
single L-inf PGD (share 0.5, 5 steps); the multi-family adaptive step over all five families; and the U-Net with
the families. Inputs are random and the target an untrained LeNet: the cost does not depend on them. With several
families a step's cost depends on the family drawn, so the mean over `--steps` steps is reported. The machine's
CPU model and whether it has avx512f are printed beside the numbers. No number from it is quoted in the docs yet.

    python bench/bench_arn_levers.py                       # preset default, 20 timed steps each
    python bench/bench_arn_levers.py --preset tiny --steps 5
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

FAMILIES = "pgd_linf,pgd_linf_targeted,pgd_l2,flow,patch"
LEVERS = {
    "paper": {},
    "residual_unet": {"generator": "residual_unet"},
    "adaptive_pgd_linf": {"adaptive_share": 0.5, "adaptive_steps": 5},
    "adaptive_families": {"adaptive_share": 0.5, "adaptive_steps": 5, "adaptive_families": FAMILIES},
    "residual_unet+families": {"generator": "residual_unet", "adaptive_share": 0.5, "adaptive_steps": 5,
                               "adaptive_families": FAMILIES},
}


def machine() -> dict:
    model, flags = platform.processor(), ""
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name") and not model:
                    model = line.split(":", 1)[1].strip()
                if line.startswith("flags"):
                    flags = line
                    break
    except OSError:
        pass
    return {"cpu": model, "avx512f": " avx512f" in flags, "cores": os.cpu_count()}


def time_lever(name: str, preset: str, batch: int, steps: int, warmup: int = 2) -> float:
    import keras
    from bench_arn_step import seconds_per_step  # bench/ is on sys.path when a bench script runs

    from arnkit.data import budgets
    from arnkit.defenses.arn import ARN, ARNConfig
    from arnkit.models import build

    keras.utils.set_random_seed(0)
    b = budgets.MNIST
    extra = {"adaptive_l2_eps": b.l2_eps, "adaptive_flow_eps": b.flow_eps, "adaptive_patch": b.patch}
    changes = LEVERS[name]
    config = ARNConfig.for_dataset("mnist", preset=preset, **changes,
                                   **(extra if "adaptive_families" in changes else {}))
    guide = build("lenet", (28, 28, 1), 10) if config.adaptive else None
    arn = ARN(image_shape=(28, 28, 1), num_attacks=2, config=config, guide=guide)
    return seconds_per_step(arn, batch, steps, warmup)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="default")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--levers", nargs="+", default=list(LEVERS), choices=list(LEVERS))
    args = parser.parse_args()
    rows = {name: round(time_lever(name, args.preset, args.batch, args.steps), 4) for name in args.levers}
    print(json.dumps({"machine": machine(), "date": time.strftime("%Y-%m-%d"), "preset": args.preset,
                      "batch": args.batch, "seconds_per_step": rows}, indent=2))


if __name__ == "__main__":
    main()
