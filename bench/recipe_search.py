"""Issue 29's search in one command: train each candidate ARN recipe (every row of `arn_recipes.RECIPES`, and
single levers on top of `v1`, the search's base) and score it on the VALIDATION split, one row per (candidate, seed).

    python bench/recipe_search.py --workspace WS --dataset mnist --seeds 0,1,2 --white     # hours on 2 cores
    python bench/recipe_search.py --workspace WS --smoke                                   # minutes, synthetic
    python bench/recipe_frontier.py WS/recipe-search/mnist-val.json                        # the frontier PNG

Each (candidate, seed) runs in a child process, so its peak RSS (`os.wait4`) is its own. A row holds the
gray-box error per column on `--split` (default val), the gray worst column, with --white the white-box
worst case per image over --white-attacks (and whether every self-check passed), the training minutes (ARN's
fit, and the whole train call: target and pools are cached after the first candidate), peak RSS, the machine
(lscpu model, avx512f or not, arnkit.runtime.describe()) and the date. Rows are written atomically to
`<out>/<dataset>-<split>.json` and `.csv` after each candidate; a rerun skips finished (candidate, seed) pairs.
Numbers come from this script only; docs/recipes.md says which are measured.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import platform
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

# Table 1-2's gray-box columns (clean is always scored), per dataset; LISA: the patch attacks.
GRAY = {"mnist": "pgd_n,pgd_t,cw_n,ddn_n,aa_n,jsma_t,pgd_n@0.4,aa_n@0.4,sta_n,sta_t,fwa_n,fwa_n@0.4",
        "lisa": "ap1,ap2,ap3,ap4", "synthetic": "fgsm,pgd_n"}
# The leaked-defense worst case: AutoAttack, PGD_N-100 with 5 restarts, PGD_T-100.
WHITE = "pgd_n,pgd_t,aa_n"
# The levers' base, `v1`: `default` as the search began (2026-12-07), the dataset's preset at Adam 1e-3 (MNIST's
# and LISA's rate then; MNIST's default has since moved to 1e-4, the search's own result, docs/recipes.md). Its
# runs keep their folders: the run key is the resolved config, and `default` is the unkeyed recipe.
BASE = ("v1", "default", {"learning_rate": 1e-3})
# (name, train options on top of `v1`). Levers are one change each on `v1`. The residual U-Net
# generator, the multi-family leaks and the EMA of the weights (ARNConfig.generator / adaptive_families / ema,
# docs/defenses.md) are levers here like the rest.
LEVERS: list[tuple[str, dict[str, Any]]] = [
    ("width=default", {"width": "default"}),
    ("width=tiny", {"width": "tiny"}),
    ("lr=1e-4", {"learning_rate": 1e-4}),
    ("cosine", {"lr_schedule": "cosine"}),
    ("guide=0", {"guide_weight": 0.0}),
    ("guide=10", {"guide_weight": 10.0}),
    ("batch=32", {"batch_size": 32}),
    ("steps=1500", {"steps": 1500}),
    # `--adaptive` on v1: the settings of recipe:adaptive (the leak keeps lr 1e-3), in the run folder `arnkit train --adaptive` uses
    # (a recipe's name keys its folder), so a workspace's adaptive run is reused. The adaptive levers vary it.
    ("adaptive", {"adaptive": True}),
    ("adaptive_share=1", {"adaptive": True, "config_overrides": {"adaptive_share": 1.0}}),
    ("adaptive_steps=10", {"adaptive": True, "config_overrides": {"adaptive_steps": 10}}),
    ("adaptive_guide=0", {"adaptive": True, "config_overrides": {"adaptive_guide_weight": 0.0}}),
    ("generator=residual_unet", {"config_overrides": {"generator": "residual_unet"}}),
    ("ema=0.999", {"config_overrides": {"ema": 0.999}}),
    ("families=linf+l2+flow", {"adaptive": True,
                               "config_overrides": {"adaptive_families": ("pgd_linf", "pgd_l2", "flow")}}),
    ("families=all", {"adaptive": True, "config_overrides": {
        "adaptive_families": ("pgd_linf", "pgd_linf_targeted", "pgd_l2", "flow", "patch")}}),
    ("residual_unet+families", {"adaptive": True, "config_overrides": {
        "generator": "residual_unet", "adaptive_families": ("pgd_linf", "pgd_l2", "flow")}}),
]
# (name, recipe, train options): levers together. `paper` has the best worst column of MNIST's first five
# candidates on val (docs/recipes.md); EMA and leaks of several families are the levers that lowered `v1`'s
# worst column (FWA) or aim at it (flows).
COMBINATIONS: list[tuple[str, str, dict[str, Any]]] = [
    ("paper+ema=0.999", "paper", {"config_overrides": {"ema": 0.999}}),
    ("paper+families=linf+l2+flow", "paper", {"adaptive": True, "config_overrides": {
        "adaptive_families": ("pgd_linf", "pgd_l2", "flow")}}),
    # `v1` at the paper's learning rate has the best worst column of the first seven on val; EMA had the
    # best JSMA_T
    ("v1+lr=1e-4+ema=0.999", "default", {"learning_rate": 1e-4, "config_overrides": {"ema": 0.999}}),
    # the same rate at the paper's (default) width, about a third of `large`'s step (docs/benchmarks.md): the
    # 15-minute AVX2 goal needs a cheaper step than `large`'s
    ("v1+lr=1e-4+width=default", "default", {"learning_rate": 1e-4, "width": "default"}),
]
# Tables 1-2's column order (MNIST), for the lever table.
COLUMN_ORDER = {k: i for i, k in enumerate(GRAY["mnist"].split(","))}
SMOKE = {"steps": 2, "width": "tiny", "pool_size": 32, "batch_size": 16, "eval_limit": 16}
SMOKE_LEVERS = ("cosine",)
CSV_COLUMNS = ("candidate", "recipe", "seed", "gray_worst_column", "gray_worst_value", "white_worst_case",
               "white_sanity_passed", "train_minutes", "end_to_end_minutes", "peak_rss_mb", "cpu", "avx512f", "date")


def candidates(smoke: bool = False) -> list[tuple[str, str, dict[str, Any]]]:
    """Every recipe of the registry, the base `v1` and each lever on it, then the combinations."""
    from arnkit.defenses import arn_recipes

    rows = [(f"recipe:{name}", name, {}) for name in arn_recipes.RECIPES]
    levers = [lever for lever in LEVERS if not smoke or lever[0] in SMOKE_LEVERS]
    base, recipe, pinned = BASE
    on_base = ([] if smoke else [(base, recipe, pinned)]) + [(f"{base}+{name}", recipe, {**pinned, **options})
                                                            for name, options in levers]
    return rows + on_base + ([] if smoke else COMBINATIONS)


def machine() -> dict[str, Any]:
    """lscpu's model name and whether the CPU has avx512f (the issue's 15-minute goal is for AVX2 only)."""
    from arnkit import runtime

    model, flags = platform.processor(), ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name") and model in ("", platform.machine()):
                model = line.split(":", 1)[1].strip()
            if line.startswith("flags") and not flags:
                flags = line.split(":", 1)[1]
    except OSError:
        pass
    return {"cpu": model, "avx512f": "avx512f" in flags.split(), "runtime": runtime.describe()}


def run_one(args: argparse.Namespace, name: str, seed: int) -> dict[str, Any]:
    """In the child: train the candidate, score it; return its row (without peak RSS)."""
    from arnkit.defenses import registry
    from arnkit.pipeline.evaluate import evaluate
    from arnkit.progress import NullProgress

    recipe, options = next((r, o) for n, r, o in candidates() if n == name)
    # The closing report scores test images: 16 of them only, so the search on val never reads the test split's
    # numbers (eval_limit is not part of a run's key, so runs trained by `arnkit train` are reused).
    options = {"eval_limit": 16, **options, **(SMOKE if args.smoke else {})}
    started = time.perf_counter()
    record = registry.get("arn").train(args.dataset, workspace=args.workspace, seed=seed, progress=NullProgress(),
                                       recipe=recipe, **options).to_dict()
    wall = time.perf_counter() - started
    common = {"dataset": args.dataset, "split": args.split, "limit": args.limit, "seed": seed, "target_seed": 0,
              "workspace": args.workspace, "progress": NullProgress()}
    gray = evaluate(attack=args.gray or GRAY[args.dataset], defenses=["none", record["defense_path"]],
                    threat_model="gray", sanity_checks=False, **common)
    row: dict[str, Any] = {"candidate": name, "recipe": recipe, "options": options, "seed": seed,
                           "defense_path": record["defense_path"], "reused": record.get("reused"),
                           "recipe_settings": record.get("recipe_settings"), "config": record.get("config")}
    row["gray"] = {r["label"]: r["error"] for r in gray["rows"] if r["defense"] != "none"}
    row["gray_none"] = {r["label"]: r["error"] for r in gray["rows"] if r["defense"] == "none"}
    attacked = {k: v for k, v in row["gray"].items() if k not in ("clean", "worst case")}
    worst = max(attacked, key=attacked.get) if attacked else None
    row["gray_worst_column"], row["gray_worst_value"] = worst, attacked.get(worst) if worst else None
    if args.white:
        # White box on the first --white-limit images: AutoAttack and 5 restarts of PGD-100 through ARN cost
        # about 100x a gray-box column on 2 cores.
        row["white_limit"] = args.white_limit or args.limit
        white = evaluate(attack=args.white_attacks, defenses=[record["defense_path"]], threat_model="white",
                         iterations=args.white_iterations, restarts=args.white_restarts,
                         **{**common, "limit": row["white_limit"]})
        mine = [r for r in white["rows"] if r["defense"] != "none"]
        row["white"] = {r["label"]: r["error"] for r in mine}
        attacks = [r["error"] for r in mine if r["attack"] not in ("clean", "worst_case")]
        # one attack column has no worst-case row: its own error is the worst case
        row["white_worst_case"] = next((r["error"] for r in mine if r["attack"] == "worst_case"),
                                       attacks[0] if len(attacks) == 1 else None)
        row["white_sanity_passed"] = white["sanity_passed"]
    row["train_minutes"] = round(float(record.get("train_seconds") or 0.0) / 60, 2)
    row["end_to_end_minutes"] = round(sum((record.get("phase_seconds") or {}).values()) / 60, 2)
    row["wall_minutes_this_call"] = round(wall / 60, 2)
    return row


def spawn(args: argparse.Namespace, name: str, seed: int, out: Path) -> dict[str, Any]:
    """Run one candidate in a child process; its row, with the child's peak RSS."""
    row_path = out / f".row-{abs(hash((name, seed)))}.json"
    cmd = [sys.executable, __file__, "--child", name, "--child-seed", str(seed), "--child-out", str(row_path),
           *sys.argv[1:]]
    child = subprocess.Popen(cmd, cwd=REPO)
    _, status, usage = os.wait4(child.pid, 0)
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode != 0 or not row_path.exists():
        raise SystemExit(f"candidate {name} seed {seed} failed (exit {child.returncode}); rerun to resume")
    row = json.loads(row_path.read_text())
    row_path.unlink()
    row["peak_rss_mb"] = round(usage.ru_maxrss / 1024)  # Linux: kilobytes
    return row


def write(out: Path, stem: str, results: dict[str, Any]) -> None:
    from arnkit.io import write_bytes_atomic, write_json_atomic

    write_json_atomic(out / f"{stem}.json", results)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=[*CSV_COLUMNS, "gray"], extrasaction="ignore")
    writer.writeheader()
    for row in results["rows"]:
        writer.writerow({**row, "gray": json.dumps(row.get("gray", {}), sort_keys=True)})
    write_bytes_atomic(out / f"{stem}.csv", buffer.getvalue().encode())


def current_names(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows stored before the base was named `v1` (2026-12-08) under today's names: `default+X` was a lever on
    what is now `v1`, and MNIST's `recipe:default` at Adam 1e-3 is `v1` itself (MNIST's default is 1e-4 since)."""
    out = []
    for row in rows:
        name = row["candidate"]
        if name.startswith("default+"):
            name = BASE[0] + name.removeprefix("default")
        elif (name == "recipe:default" and row.get("dataset") == "mnist"
              and (row.get("recipe_settings") or {}).get("learning_rate") == 1e-3):
            name = BASE[0]
        out.append({**row, "candidate": name})
    return out


def write_row(out: Path, stem: str, row: dict[str, Any]) -> None:
    """Add one finished row to `out/stem.json` (and .csv), re-read under a lock: two searches may share a folder
    (one scoring seeds 1-2 while another trains a lever), and a copy read at start would drop the other's rows."""
    from arnkit.io import building

    path = out / f"{stem}.json"
    with building(path):
        results = json.loads(path.read_text()) if path.exists() else {"rows": []}
        results["rows"] = merged(current_names(results["rows"]), current_names([row]))
        write(out, stem, results)


def merged(rows: list[dict[str, Any]], other: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """`rows` with `other`'s rows added, each replacing the row of the same (candidate, seed)."""
    theirs = {(r["candidate"], r["seed"]) for r in other}
    return [r for r in rows if (r["candidate"], r["seed"]) not in theirs] + list(other)


def seed_mean(values: list[float | None]) -> float | None:
    """The mean over a candidate's seeds, or None unless every seed has the value (a partial mean would mislead)."""
    known = [v for v in values if v is not None]
    return sum(known) / len(known) if known and len(known) == len(values) else None


def table(rows: list[dict[str, Any]]) -> str:
    """The lever table (markdown): one line per candidate, the mean over its seeds of each gray-box column, the
    worst column, the white-box worst case (on its images) and ARN's training minutes; NONE first."""
    grouped: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        grouped[row["candidate"]].append(row)
    if not grouped:
        return "(no rows)"
    labels = [k for k in next(iter(grouped.values()))[0]["gray"] if k != "worst case"]
    labels = ["clean", *sorted((k for k in labels if k != "clean"), key=lambda k: COLUMN_ORDER.get(k, 99))]

    def mean(values: list[float | None]) -> str:
        value = seed_mean(values)
        return "-" if value is None else f"{value:.2f}"

    lines = ["| candidate | seeds | " + " | ".join(labels) + " | worst column | white worst case (images) "
             "| ARN minutes |", "|---" * (len(labels) + 5) + "|"]
    first = next(iter(grouped.values()))[0]
    lines.append("| NONE | | " + " | ".join(f"{first['gray_none'][k]:.2f}" for k in labels) + " | | | |")
    for name, group in grouped.items():
        white = mean([r.get("white_worst_case") for r in group])
        images = group[0].get("white_limit")
        # the worst column of the seed means (each seed's own worst column may differ)
        means = {k: seed_mean([r["gray"][k] for r in group]) for k in labels}
        attacked = {k: v for k, v in means.items() if k != "clean" and v is not None}
        worst = max(attacked, key=attacked.get) if attacked else None
        lines.append(f"| {name} | {len(group)} | " + " | ".join(mean([means[k]]) for k in labels)
                     + (f" | {worst} {attacked[worst]:.2f} | " if worst else " | - | ")
                     + (f"{white} ({images})" if white != "-" else "-")
                     + f" | {mean([r['train_minutes'] for r in group])} |")
    return "\n".join(lines)


def published_rows(results: dict[str, Any]) -> list[dict[str, Any]]:
    """The named recipes' rows of a search (candidates `recipe:NAME`), each the mean over its seeds: gray error per
    column, the white-box worst case when scored, ARN's training minutes. Levers are not recipes: not published."""
    grouped: dict[tuple[str, str, str], list[dict[str, Any]]] = defaultdict(list)
    for row in results["rows"]:
        if row["candidate"].startswith("recipe:"):
            grouped[(row["recipe"], row.get("dataset") or results.get("dataset", ""), row["split"])].append(row)
    out = []
    for (recipe, dataset, split), rows in grouped.items():
        columns = {label: round(seed_mean([r["gray"][label] for r in rows]), 2) for label in rows[0]["gray"]}
        white = seed_mean([r.get("white_worst_case") for r in rows])
        if white is not None:
            columns["white_worst_case"] = round(white, 2)
        columns["train_minutes"] = round(seed_mean([r["train_minutes"] for r in rows]), 1)
        last = rows[-1]
        out.append({"recipe": recipe, "dataset": dataset, "split": split, "columns": columns,
                    "command": last["command"], "machine": f"{last['cpu']} (avx512f: {'yes' if last['avx512f'] else 'no'})",
                    "date": last["date"], "seeds": len(rows)})
    return out


def publish(results: dict[str, Any], target: Path) -> list[dict[str, Any]]:
    """Write the search's recipe rows into the measurements file `target` (arn_recipes.MEASUREMENTS), replacing
    the rows of the same (recipe, dataset, split); returns what was written."""
    from arnkit.io import write_json_atomic

    new = published_rows(results)
    if not new:
        raise SystemExit("no recipe:NAME candidate in these results; run the search with --only recipe:default,...")
    replaced = {(r["recipe"], r["dataset"], r["split"]) for r in new}
    kept = json.loads(target.read_text())["rows"] if target.exists() else []
    kept = [r for r in kept if (r["recipe"], r["dataset"], r["split"]) not in replaced]
    rows = sorted(kept + new, key=lambda r: (r["recipe"], r["dataset"], r["split"]))
    write_json_atomic(target, {"rows": rows})
    return new


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workspace", required=True)
    parser.add_argument("--dataset", default="mnist")
    parser.add_argument("--split", default="val", choices=["val", "test"])
    parser.add_argument("--limit", type=int, default=1000, help="images scored per column")
    parser.add_argument("--seeds", default="0", help="defense seeds, comma-separated (the issue: 0,1,2)")
    parser.add_argument("--only", default="", help="candidates to run, comma-separated (default: all)")
    parser.add_argument("--gray", default="", help="gray-box attacks (default: the dataset's Table 1-2 columns)")
    parser.add_argument("--white", action="store_true", help="also score the leaked defense, white box")
    parser.add_argument("--white-attacks", default=WHITE)
    parser.add_argument("--white-iterations", type=int, default=100)
    parser.add_argument("--white-restarts", type=int, default=5)
    parser.add_argument("--white-limit", type=int, default=100,
                        help="images of the white-box score (0: --limit's); a row scored gray only gains its "
                             "white box when rerun with --white")
    parser.add_argument("--out", default="", help="results folder (default: WORKSPACE/recipe-search)")
    parser.add_argument("--smoke", action="store_true",
                        help="synthetic data, 2 tiny steps, 16 images, few candidates: checks the harness only")
    parser.add_argument("--list", action="store_true", help="print the candidates and exit")
    parser.add_argument("--merge", default="", help="take the rows of another search's JSON into this one "
                                                     "(a row there replaces the same candidate and seed here)")
    parser.add_argument("--table", action="store_true", help="print the lever table (markdown) and exit")
    parser.add_argument("--publish", action="store_true",
                        help="write the finished recipe:NAME rows (mean over seeds) into "
                             "arnkit/defenses/recipe_measurements.json, where `arnkit defenses` lists them")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--child-seed", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--child-out", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.smoke:
        args.dataset, args.limit, args.white_iterations, args.white_restarts = "synthetic", 16, 5, 1
        args.white_limit = 16
        args.white_attacks = "pgd_n"
    return args


def main(argv: list[str]) -> None:
    args = parse(argv)
    if args.list:
        for name, recipe, options in candidates(args.smoke):
            print(name, recipe, json.dumps(options))
        return
    out = Path(args.out or Path(args.workspace) / "recipe-search")
    if args.child:
        from arnkit.io import write_json_atomic

        write_json_atomic(args.child_out, run_one(args, args.child, args.child_seed))
        return
    out.mkdir(parents=True, exist_ok=True)
    stem = f"{args.dataset}-{args.split}"
    path = out / f"{stem}.json"
    results = json.loads(path.read_text()) if path.exists() else {"rows": []}
    if current_names(results["rows"]) != results["rows"]:  # stored under the old names: rewrite them once
        from arnkit.io import building

        with building(path):
            results = json.loads(path.read_text())
            results["rows"] = current_names(results["rows"])
            write(out, stem, results)
    if args.merge:
        # Two searches run side by side write two folders (--out); this takes the other's rows into this one,
        # a row of the other replacing the same (candidate, seed) here.
        results["rows"] = merged(results["rows"], current_names(json.loads(Path(args.merge).read_text())["rows"]))
        write(out, stem, results)
    if args.table:
        print(table(results["rows"]))
        return
    if args.publish:
        from arnkit.defenses.arn_recipes import MEASUREMENTS

        for row in publish({**results, "dataset": args.dataset}, MEASUREMENTS):
            print(json.dumps(row), flush=True)
        return
    # A finished pair is skipped; under --white, a pair scored gray only is run again (its training and gray-box
    # sets are reused) and its row replaced.
    done = {(row["candidate"], row["seed"]) for row in results["rows"] if "white" in row or not args.white}
    wanted = {n.strip() for n in args.only.split(",") if n.strip()}
    known = [name for name, _, _ in candidates(args.smoke and not wanted)]  # --only picks among every lever
    if wanted - set(known):
        raise SystemExit(f"unknown candidates {sorted(wanted - set(known))}; --list shows them")
    host = machine()
    for name in known:
        for seed in (int(s) for s in args.seeds.split(",")):
            if (wanted and name not in wanted) or (name, seed) in done:
                continue
            row = spawn(args, name, seed, out)
            row.update(host, dataset=args.dataset, date=time.strftime("%Y-%m-%d"), command=" ".join(["python bench/recipe_search.py", *argv]),
                       split=args.split, limit=args.limit)
            write_row(out, stem, row)
            print(json.dumps({k: row.get(k) for k in CSV_COLUMNS}), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
