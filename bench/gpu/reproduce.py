"""The paper-scale MNIST reproduction under KERAS_BACKEND=jax, for a GPU machine with no TensorFlow.

Trains ARN at the `reference` width for the paper's 20,000 steps (Section 4.1: lr 1e-4, the paper's losses, no
guidance), then writes the Tables 1-2 ARN_PP row, gray box, on the first 1,000 test images, and the step time.

- The target and the seen-attack pools (PGD_N, PGD_T) are made here, under JAX, unless `bench/gpu/prepare.py`
  (on a TensorFlow machine) left a target in .gpu-carry/ws; then that target is defended.
- Columns whose attack has a JAX path (clean, pgd_n, pgd_t, pgd_n@0.4) are crafted here against the target.
  The TF-only attacks (CW, DDN, AA, JSMA, STA, FWA) come from .gpu-carry/graybox.npz, crafted by prepare.py
  against that same target: gray box needs only the target, so the sets travel and the defense scores them.
  Without the bundle those columns are reported as missing, never guessed.
- `--train-budget-s` caps ARN training: 20 timed steps first, and if 20,000 would not fit, the run trains as many
  as fit and says so in the result (steps_run vs steps_planned).

    bash bench/gpu/run.sh [--smoke]          # (bench/gpu/README.md)
Writes $OUT/result.json (row, step time, settings, fingerprints, runtime) and $OUT/row.md.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
os.environ.setdefault("KERAS_BACKEND", "jax")

from bench_common import PAPER_ARN_PP  # noqa: E402  (after the backend is chosen)

PAPER_STEPS = 20000
PAPER_LR = 1e-4
COLUMNS = list(PAPER_ARN_PP)
# Crafted on this machine under JAX: (attack key, eps override).
PORTABLE = {"pgd_n": ("pgd_n", None), "pgd_t": ("pgd_t", None), "pgd_n@0.4": ("pgd_n", 0.4)}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=os.environ.get("OUT", ".gpu-out"))
    parser.add_argument("--smoke", action="store_true", help="50 tiny steps, 100 test images, 512-image pools")
    parser.add_argument("--dataset", default="mnist")
    parser.add_argument("--width", default=None, help="default: reference (smoke: tiny)")
    parser.add_argument("--steps", type=int, default=None, help=f"default: {PAPER_STEPS} (smoke: 50)")
    parser.add_argument("--limit", type=int, default=None, help="test images per column (default 1000; smoke 100)")
    parser.add_argument("--pool-size", type=int, default=None, help="images per seen pool (default: the preset's)")
    parser.add_argument("--learning-rate", type=float, default=PAPER_LR)
    parser.add_argument("--guide-weight", type=float, default=0.0, help="0 = the paper")
    parser.add_argument("--train-budget-s", type=float, default=330.0,
                        help="cap on ARN training seconds (the whole run must fit 10 minutes on one H200)")
    parser.add_argument("--carry", default=str(ROOT / ".gpu-carry"), help="what prepare.py and fetch_wheels.sh left")
    parser.add_argument("--workspace", default=None, help="default: CARRY/ws when prepared, else OUT/../ws")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    args.width = args.width or ("tiny" if args.smoke else "reference")
    args.steps = args.steps or (50 if args.smoke else PAPER_STEPS)
    args.limit = args.limit or (100 if args.smoke else 1000)
    if args.pool_size is None and args.smoke:
        args.pool_size = 512
    return args


def time_steps(dataset: str, width: str, config_kw: dict, batch_size: int, n: int = 20) -> dict[str, float]:
    """Seconds of the first (compiling) step and the mean of the next `n`, on random batches of the real shape."""
    import numpy as np

    from arnkit import data
    from arnkit.defenses.arn import ARN, ARNConfig, JaxTrainer

    meta = data.info(dataset)
    arn = ARN(image_shape=meta.shape, num_attacks=2,
              config=ARNConfig.for_dataset("mnist", preset=width, **config_kw))
    arn.compile()
    trainer = JaxTrainer(arn, seed=0)
    rng = np.random.default_rng(0)
    x_adv = rng.random((batch_size, 2, *meta.shape), dtype=np.float32)
    x_nat = rng.random((batch_size, *meta.shape), dtype=np.float32)
    start = time.perf_counter()
    trainer.train_step(x_adv, x_nat)
    first = time.perf_counter() - start
    start = time.perf_counter()
    for _ in range(n):
        losses = trainer.train_step(x_adv, x_nat)
    float(losses["e_loss"])  # the last step's values are on the host: every step has finished
    return {"compile_s": round(first, 3), "step_s": (time.perf_counter() - start) / n}


def steps_within(budget_s: float, step_s: float, planned: int) -> int:
    """The planned steps, or as many as fit the budget at the measured step time (at least 1)."""
    return max(1, min(int(planned), int(budget_s // max(step_s, 1e-9))))


def bundle_columns(bundle: Path, target_fingerprint: str, limit: int) -> dict[str, dict]:
    """The TF-only attacks' gray-box sets that prepare.py crafted against this target: {column: {x, y, n}}."""
    import numpy as np

    if not bundle.exists():
        return {}
    with np.load(bundle, allow_pickle=False) as z:
        meta = json.loads(str(z["meta"]))
        if meta["target_fingerprint"] != target_fingerprint:
            print(f"! {bundle} was crafted against target {meta['target_fingerprint']}, not this one "
                  f"({target_fingerprint}); its columns are left out", flush=True)
            return {}
        return {col: {"x": z[f"{col}/x"][:limit], "y": z[f"{col}/y"][:limit], "params": meta["params"][col]}
                for col in meta["columns"]}


def errors(model, preprocessor, x, y) -> tuple[float, float]:
    import numpy as np

    from arnkit.pipeline.target import evaluate_accuracy

    restored = np.concatenate([np.asarray(preprocessor(x[i:i + 500], training=False)) for i in range(0, len(x), 500)])
    return (round(100 * (1 - evaluate_accuracy(model, x, y)), 2),
            round(100 * (1 - evaluate_accuracy(model, restored, y)), 2))


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    carry = Path(args.carry)
    prepared = (carry / "ws" / "targets").is_dir()
    workspace = Path(args.workspace or (carry / "ws" if prepared else out.parent / f"{out.name}-ws"))

    import jax
    import keras

    from arnkit import adversarial_store, data, runtime
    from arnkit.defenses import load as load_defense
    from arnkit.pipeline.attack import craft
    from arnkit.pipeline.target import ensure_target
    from arnkit.pipeline.train import DEFAULT_BATCH, train_defense

    if keras.backend.backend() != "jax":
        raise SystemExit(f"run under KERAS_BACKEND=jax (this process has {keras.backend.backend()})")
    devices = [str(d) for d in jax.devices()]
    print(f"jax {jax.__version__} on {devices}; keras {keras.__version__}; workspace {workspace}", flush=True)
    wall = time.perf_counter()
    config_kw = {"learning_rate": args.learning_rate, **({"guide_weight": args.guide_weight} if args.guide_weight else {})}
    timing = time_steps(args.dataset, args.width, config_kw, DEFAULT_BATCH)
    steps = steps_within(args.train_budget_s, timing["step_s"], args.steps)
    print(f"step {1000 * timing['step_s']:.2f} ms (first, compiling: {timing['compile_s']:.1f} s); "
          f"{args.steps} steps -> {args.steps * timing['step_s']:.0f} s; training {steps}", flush=True)

    target, target_record = ensure_target(args.dataset, workspace=workspace, seed=args.seed)
    started = time.perf_counter()
    record = train_defense(args.dataset, steps=steps, width=args.width, pool_size=args.pool_size,
                           learning_rate=args.learning_rate, guide_weight=args.guide_weight,
                           eval_limit=args.limit, seed=args.seed, workspace=workspace,
                           checkpoint_every=max(steps // 4, 50))
    run_seconds = time.perf_counter() - started
    preprocessor = load_defense(record["defense_path"])

    x, y, _ = data.load_arrays(args.dataset, "test", limit=args.limit)
    row: dict[str, dict] = {"clean": dict(zip(("none", "arn"), errors(target, preprocessor, x, y), strict=True),
                                          n=len(x), source="test set")}
    for column, (key, eps) in PORTABLE.items():
        res = craft(args.dataset, key, split="test", limit=args.limit, eps=eps, seed=args.seed, workspace=workspace,
                    model=target, fingerprint=target_record.fingerprint)
        adv = adversarial_store.load(res["path"])
        row[column] = dict(zip(("none", "arn"), errors(target, preprocessor, adv.x_adv, adv.labels), strict=True),
                           n=len(adv.labels), source="crafted here (jax)")
    for column, sets in bundle_columns(carry / "graybox.npz", target_record.fingerprint, args.limit).items():
        row[column] = dict(zip(("none", "arn"), errors(target, preprocessor, sets["x"], sets["y"]), strict=True),
                           n=len(sets["y"]), source="prepare.py (tensorflow)", params=sets["params"])

    result = {
        "command": "bash bench/gpu/run.sh" + (" --smoke" if args.smoke else ""),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "devices": devices, "jax": jax.__version__, "keras": keras.__version__, "runtime": runtime.describe(),
        "width": args.width, "steps_planned": args.steps, "steps_run": steps,
        "budget_limited": steps < args.steps, "learning_rate": args.learning_rate, "guide_weight": args.guide_weight,
        "batch_size": DEFAULT_BATCH, "pool_size": record["pool_size"],
        "step_ms": round(1000 * timing["step_s"], 3), "compile_s": timing["compile_s"],
        "arn_train_seconds": record["train_seconds"], "train_defense_seconds": round(run_seconds, 2),
        "wall_seconds": round(time.perf_counter() - wall, 2), "final_losses": record["final_losses"],
        "target_fingerprint": target_record.fingerprint, "target_test_error": target_record.test_error,
        "defense_fingerprint": record["defense_fingerprint"], "seed": args.seed,
        "row": row, "missing": [c for c in COLUMNS if c not in row], "paper_arn_pp": PAPER_ARN_PP,
    }
    _write_atomic(out / "result.json", json.dumps(result, indent=1, default=str))
    _write_atomic(out / "row.md", markdown_row(result))
    print(markdown_row(result), flush=True)
    return result


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def markdown_row(result: dict) -> str:
    head = "| defense | " + " | ".join(COLUMNS) + " |\n|---|" + "---|" * len(COLUMNS) + "\n"
    cells = [f"{result['row'][c]['arn']:.2f} / {PAPER_ARN_PP[c]}" if c in result["row"] else f"- / {PAPER_ARN_PP[c]}"
             for c in COLUMNS]
    none = [f"{result['row'][c]['none']:.2f}" if c in result["row"] else "-" for c in COLUMNS]
    return (head + f"| NONE | {' | '.join(none)} |\n| ARN_PP (ours / paper) | {' | '.join(cells)} |\n"
            f"\n{result['width']} width, {result['steps_run']} of {result['steps_planned']} steps, "
            f"{result['step_ms']} ms/step on {', '.join(result['devices'])}\n")


if __name__ == "__main__":
    main()
