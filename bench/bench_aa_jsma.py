"""Benchmark: AutoAttack (standard L-inf) and its components, and JSMA, on the paper's LeNet and MNIST.

    .venv/bin/python bench/bench_aa_jsma.py                  # 1,000 test images (JSMA logits: 200), ~5 min
    .venv/bin/python bench/bench_aa_jsma.py --images 200 --jsma-images 100 --out /tmp/aa_jsma.json

Trains the paper LeNet (conv 32-64, fc 200) for 3 epochs with Adam 1e-3, batch 128, unless its weights are
cached at /tmp/arnkit_bench_lenet.weights.h5 (another benchmark may write the same file: it is written to a
temp name and renamed). Every attack first runs once on 8 images so that graph tracing is not timed.
At eps .3 APGD-CE alone fools this LeNet, so a second AutoAttack run at --hard-eps (.1) shows the cost when
APGD-T, FAB-T and Square have robust points left to work on.
"""

from __future__ import annotations

import argparse
import json
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
from bench_common import WEIGHTS, paper_lenet  # noqa: F401  (run as python bench/...)

# Measured elsewhere on the same machine class (PITFALLS.md), not in this run: images per second.
PEERS = {
    "autoattack": ("torchattacks 3.5.1 AutoAttack, 100 images in 0.3 s", 100 / 0.3),
    "apgd_ce": ("torchattacks 3.5.1 APGD-CE, 100 images in 4 s", 100 / 4),
    "apgd_t": ("torchattacks 3.5.1 APGD-T, 100 images in 4 s", 100 / 4),
    "square": ("torchattacks 3.5.1 Square, 100 images in 2 s", 100 / 2),
    "jsma_probs": ("advertorch 0.2.3 JSMA, 20 images in 14 s (mean L0 54.7)", 20 / 14),
    "jsma_logits": ("advertorch 0.2.3 JSMA, 20 images in 14 s (mean L0 54.7)", 20 / 14),
}


def timed(label: str, attack, model, x, y) -> tuple[dict, object]:
    attack(model, x[:8], y[:8], seed=0)  # trace the graphs outside the timing
    start = time.perf_counter()
    result = attack(model, x, y, seed=0)
    seconds = time.perf_counter() - start
    delta = (result.x_adv - x).reshape(len(x), -1)
    row = {
        "attack": label,
        "images": len(x),
        "success_rate": round(float(result.success.mean()), 4),
        "seconds": round(seconds, 1),
        "img_per_s": round(len(x) / seconds, 2),
        "max_linf": round(float(np.abs(delta).max()), 6),
        "params": attack.params(),
    }
    if label in PEERS:
        peer, peer_rate = PEERS[label]
        row["peer"] = peer
        row["speed_vs_peer"] = round(row["img_per_s"] / peer_rate, 2)
    print(json.dumps({k: v for k, v in row.items() if k != "params"}), flush=True)
    return row, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=1000, help="MNIST test images for AutoAttack and components")
    parser.add_argument("--jsma-images", type=int, default=1000, help="MNIST test images for JSMA")
    parser.add_argument("--logits-images", type=int, default=200, help="images for JSMA with the logits Jacobian")
    parser.add_argument("--hard-eps", type=float, default=0.1,
                        help="a smaller eps where APGD-CE leaves robust points, so every component works")
    parser.add_argument("--hard-images", type=int, default=100, help="images for the --hard-eps AutoAttack run")
    parser.add_argument("--out", default="", help="write the rows as JSON here")
    args = parser.parse_args()

    from arnkit import data
    from arnkit.attacks.apgd import APGD, APGDT
    from arnkit.attacks.autoattack import AutoAttack
    from arnkit.attacks.fab import FABT
    from arnkit.attacks.jsma import JSMA
    from arnkit.attacks.square import Square

    model = paper_lenet()
    needed = max(args.images, args.jsma_images, args.logits_images, args.hard_images)
    x, y, _ = data.load_arrays("mnist", "test", limit=needed)
    rows = []
    if args.images > 0:
        xa, ya = x[:args.images], y[:args.images]
        clean = np.argmax(model.predict(xa, verbose=0), -1) == ya
        print(json.dumps({"clean_accuracy": round(float(clean.mean()), 4), "images": args.images}), flush=True)
        aa = AutoAttack(eps=0.3)
        row, result = timed("autoattack", aa, model, xa, ya)
        row["components_inside_aa"] = result.extras["report"]
        print(json.dumps({"components_inside_aa": result.extras["report"]}), flush=True)
        rows.append(row)
        for label, attack in [("apgd_ce", APGD(eps=0.3)), ("apgd_t", APGDT(eps=0.3)), ("fab_t", FABT(eps=0.3)),
                              ("square", Square(eps=0.3))]:
            rows.append(timed(label, attack, model, xa, ya)[0])

    if args.hard_images > 0:
        hard = AutoAttack(eps=args.hard_eps)
        row, result = timed(f"autoattack_eps{args.hard_eps:g}", hard, model, x[:args.hard_images],
                            y[:args.hard_images])
        row["components_inside_aa"] = result.extras["report"]
        print(json.dumps({"components_inside_aa": result.extras["report"]}), flush=True)
        rows.append(row)

    for label, attack, n in [("jsma_probs", JSMA(), args.jsma_images),
                             ("jsma_logits", JSMA(jacobian="logits"), args.logits_images)]:
        if n <= 0:
            continue
        row, result = timed(label, attack, model, x[:n], y[:n])
        l0 = (np.abs(result.x_adv - x[:n]) > 1e-6).reshape(n, -1).sum(1)
        row["target_hit_rate"] = row["success_rate"]
        row["mean_l0"] = round(float(l0.mean()), 2)
        row["mean_l0_of_hits"] = round(float(l0[result.success].mean()), 2) if result.success.any() else None
        print(json.dumps({"attack": label, "mean_l0": row["mean_l0"], "mean_l0_of_hits": row["mean_l0_of_hits"]}),
              flush=True)
        rows.append(row)

    if args.out:
        with open(args.out, "w") as handle:
            json.dump(rows, handle, indent=1, default=str)


if __name__ == "__main__":
    main()
