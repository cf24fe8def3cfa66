"""DOA's fine-tuning learning rate on LISA, chosen on the validation tracks (issue 30).

    python bench/doa_lr_pilot.py WORKSPACE [--lrs 0.01,0.001] [--roa 9x5] [--epochs 5] [--select-val N] [--dropout 0]

DOA's own `sticker_retrain.py` fine-tunes LISA-CNN with Adam at a constant .01 for 5 epochs, batch 256. Each
learning rate here trains that schedule on the workspace's LISA target (the run folders stay in WORKSPACE: use
a scratch copy holding the target, not the workspace of the tables) and scores it on the 381 val images:
clean, ROA (its seen attack) and AP1-AP4, gray box (the patches crafted against the DOA model itself, which is
the defense). Rows go to WORKSPACE/doa-lr-pilot.json with the machine and date. `--select-val N` keeps the epoch
with the lowest ROA error on the first N val images, as DOA keeps its best epoch (the row lists every epoch's score).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("workspace")
    parser.add_argument("--lrs", default="0.01,0.001")
    parser.add_argument("--roa", default="9x5")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--select-val", type=int, default=0,
                        help="keep the epoch with the lowest ROA error on this many val images (0: the last)")
    parser.add_argument("--dropout", type=float, default=None,
                        help="the LISA-CNN's Dropout rate while it fine-tunes (default: the target's .5)")
    args = parser.parse_args(argv)

    from recipe_search import machine  # lscpu's model, avx512f, arnkit's runtime (run as python bench/...)

    from arnkit import presets
    from arnkit.defenses import registry
    from arnkit.io import write_json_atomic
    from arnkit.pipeline.evaluate import evaluate
    from arnkit.progress import NullProgress

    out = Path(args.workspace) / "doa-lr-pilot.json"
    rows = json.loads(out.read_text())["rows"] if out.exists() else []
    lisa = presets.PRESETS["lisa"]
    for lr in (float(v) for v in args.lrs.split(",")):
        if any(r["learning_rate"] == lr and r["roa"] == args.roa and r["epochs"] == args.epochs
               and r.get("select_val", 0) == args.select_val and r.get("dropout") == args.dropout for r in rows):
            continue
        recipe = replace(presets.DOA_OWN_LISA, learning_rate=lr, epochs=args.epochs)
        presets.PRESETS["lisa"] = replace(lisa, doa=replace(lisa.doa, recipe=recipe))
        started = time.perf_counter()
        record = registry.get("doa").train("lisa", workspace=args.workspace, roa=args.roa, eval_limit=16,
                                           select_val=args.select_val, dropout=args.dropout,
                                           progress=NullProgress()).to_dict()
        minutes = (time.perf_counter() - started) / 60
        result = evaluate("lisa", "roa,ap1,ap2,ap3,ap4", defenses=[record["defense_path"]], split="val", limit=0,
                          workspace=args.workspace, sanity_checks=False, progress=NullProgress())
        errors = {r["label"]: r["error"] for r in result["rows"] if r["defense"] != "none"}
        rows.append({"learning_rate": lr, "roa": args.roa, "epochs": args.epochs, "select_val": args.select_val,
                     "dropout": args.dropout,
                     "selected_epoch": record.get("selected_epoch"), "epoch_scores": record.get("epoch_scores"),
                     "batch_size": recipe.batch_size,
                     "schedule": recipe.schedule, "val": errors, "train_minutes": round(minutes, 1),
                     "defense_path": record["defense_path"], "machine": machine(),
                     "date": time.strftime("%Y-%m-%d"), "command": " ".join(["python bench/doa_lr_pilot.py", *argv])})
        write_json_atomic(out, {"rows": rows})
        print(json.dumps(rows[-1]), flush=True)
    presets.PRESETS["lisa"] = lisa


if __name__ == "__main__":
    main(sys.argv[1:])
