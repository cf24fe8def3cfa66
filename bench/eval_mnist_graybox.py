"""Gray-box error table (the paper's main setting) for a trained ARN workspace: attacks crafted against the
target alone, then passed through the defense. Usage:
    python bench/eval_mnist_graybox.py WORKSPACE [--limit 1000] [--cw-limit 300]
Prints a markdown table of error rates (%) without / with the defense, next to the paper's ARN_PP row."""

import argparse
import glob
import json
import time

import numpy as np
from bench_common import PAPER_ARN_PP

from arnkit import adversarial_store, defenses
from arnkit.io import load_model
from arnkit.pipeline.attack import craft
from arnkit.pipeline.target import evaluate_accuracy


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("workspace")
    parser.add_argument("--limit", type=int, default=1000)
    parser.add_argument("--cw-limit", type=int, default=300)
    parser.add_argument("--attacks", default="pgd_n,pgd_t,ddn_n,aa_n,jsma_t,fwa_n,sta_n,sta_t,cw_n")
    args = parser.parse_args()
    record = json.loads(open(sorted(glob.glob(f"{args.workspace}/defenses/*/record.json"))[-1]).read())
    target = load_model(record["target_path"])
    restore = defenses.load(record["defense_path"])
    rows = {"clean": (100 * (1 - record["evaluation"]["clean"]["none"] / 100), None)}
    from arnkit import data

    x, y, _ = data.load_arrays("mnist", "test", limit=args.limit)
    rows = {"clean": (100 * (1 - evaluate_accuracy(target, x, y)),
                      100 * (1 - evaluate_accuracy(target, np.asarray(restore.predict(x, verbose=0)), y)), len(x), 0)}
    for key in args.attacks.split(","):
        limit = args.cw_limit if key == "cw_n" else args.limit
        start = time.perf_counter()
        res = craft("mnist", key, split="test", limit=limit, workspace=args.workspace, model=target,
                    fingerprint=record["target_fingerprint"])
        adv = adversarial_store.load(res["path"])
        restored = np.asarray(restore.predict(adv.x_adv, batch_size=500, verbose=0))
        rows[key] = (100 * (1 - evaluate_accuracy(target, adv.x_adv, adv.labels)),
                     100 * (1 - evaluate_accuracy(target, restored, adv.labels)), limit,
                     time.perf_counter() - start)
        print(key, rows[key], flush=True)
    print("\n| attack | n | no defense | ARN (ours) | paper ARN_PP |\n|---|---|---|---|---|")
    for key, (none, arn, n, _) in rows.items():
        print(f"| {key} | {n} | {none:.2f} | {arn:.2f} | {PAPER_ARN_PP.get(key, '-')} |")


if __name__ == "__main__":
    main()
