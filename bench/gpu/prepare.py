"""On a TensorFlow machine: the gray-box sets of the TF-only attacks, for bench/gpu/reproduce.py to score.

Gray box needs only the target, so the sets can be crafted here, once, and travel to the GPU machine with the
target they were crafted against. Writes .gpu-carry/ws (the workspace's target, nothing else) and
.gpu-carry/graybox.npz ({column}/x, {column}/y and a JSON `meta` with the target fingerprint and each set's
parameters). Crafting reuses the workspace's cached sets, so a rerun (or `arnkit attack --shard i/n` runs
merged beforehand) costs nothing.

    .venv/bin/python bench/gpu/prepare.py [--workspace WS] [--limit 1000] [--cw-limit 300]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

# Column -> (attack key, eps override): Tables 1-2's attacks that have no JAX path.
TF_ONLY = {"cw_n": ("cw_n", None), "ddn_n": ("ddn_n", None), "aa_n": ("aa_n", None), "jsma_t": ("jsma_t", None),
           "aa_n@0.4": ("aa_n", 0.4), "sta_n": ("sta_n", None), "sta_t": ("sta_t", None),
           "fwa_n": ("fwa_n", None), "fwa_n@0.4": ("fwa_n", 0.4)}


def main(argv: list[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workspace", default=str(Path("~/.arnkit").expanduser()))
    parser.add_argument("--carry", default=str(ROOT / ".gpu-carry"))
    parser.add_argument("--limit", type=int, default=1000)
    parser.add_argument("--cw-limit", type=int, default=300, help="CW is the slow one (the paper's tables: 1,000)")
    parser.add_argument("--columns", default=",".join(TF_ONLY))
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    import numpy as np

    from arnkit import adversarial_store
    from arnkit.io import atomic_path
    from arnkit.pipeline.attack import craft
    from arnkit.pipeline.target import ensure_target

    target, record = ensure_target("mnist", workspace=args.workspace, seed=args.seed)
    arrays, meta = {}, {"target_fingerprint": record.fingerprint, "columns": [], "params": {}}
    for column in args.columns.split(","):
        key, eps = TF_ONLY[column]
        limit = args.cw_limit if key == "cw_n" else args.limit
        res = craft("mnist", key, split="test", limit=limit, eps=eps, seed=args.seed, workspace=args.workspace,
                    model=target, fingerprint=record.fingerprint)
        adv = adversarial_store.load(res["path"])
        arrays[f"{column}/x"], arrays[f"{column}/y"] = adv.x_adv.astype(np.float32), adv.labels.astype(np.int64)
        meta["columns"].append(column)
        meta["params"][column] = res.get("params", {"attack": key, "eps": eps})
        print(column, len(adv.labels), f"undefended error {100 * np.mean(adv.pred != adv.labels):.2f}", flush=True)
    carry = Path(args.carry)
    (carry / "ws").mkdir(parents=True, exist_ok=True)
    shutil.copytree(Path(record.path).parent, carry / "ws" / "targets", dirs_exist_ok=True)
    bundle = carry / "graybox.npz"
    with atomic_path(bundle) as tmp:
        np.savez_compressed(tmp, meta=json.dumps(meta), **arrays)
    print(f"{bundle}: {bundle.stat().st_size / 2**20:.1f} MiB, {len(meta['columns'])} columns", flush=True)
    return bundle


if __name__ == "__main__":
    main()
