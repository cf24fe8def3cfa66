"""Mean ± spread over defense seeds (issue 30): the arithmetic, its refusals, and bench/seed_spread.py's grouping
of an evaluation's defenses by their run records."""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

import numpy as np
import pytest

from arnkit.errors import ArnkitError
from arnkit.evaluation import spread

REPO = Path(__file__).resolve().parents[1]


def _row(defense, label, error, n=100, seen=False):
    return {"defense": defense, "label": label, "attack": label, "error": error, "n": n, "seen": seen}


def _rows():
    return [_row("none", "clean", 1.0), _row("none", "pgd_n", 100.0),
            _row("arn", "clean", 1.0), _row("arn", "pgd_n", 2.0, seen=True),
            _row("arn@b", "clean", 2.0), _row("arn@b", "pgd_n", 4.0, seen=True),
            _row("arn@c", "clean", 6.0), _row("arn@c", "pgd_n", 3.0, seen=True)]


def test_mean_sd_and_range_per_column():
    members = {"none": ("none", None), "arn": ("ARN", 0), "arn@b": ("ARN", 1), "arn@c": ("ARN", 2)}
    rows = {(r["defense"], r["label"]): r for r in spread.spread_rows(_rows(), members)}
    clean = rows[("ARN", "clean")]
    assert clean["values"] == [1.0, 2.0, 6.0] and clean["seeds"] == [0, 1, 2]
    assert clean["mean"] == pytest.approx(3.0)
    assert clean["sd"] == pytest.approx(math.sqrt(((1 - 3) ** 2 + (2 - 3) ** 2 + (6 - 3) ** 2) / 2), abs=1e-4)
    assert (clean["min"], clean["max"]) == (1.0, 6.0)
    assert rows[("ARN", "pgd_n")]["seen"] and rows[("ARN", "pgd_n")]["mean"] == pytest.approx(3.0)
    assert rows[("none", "pgd_n")]["sd"] is None and rows[("none", "pgd_n")]["mean"] == 100.0
    text = spread.markdown(list(rows.values()))
    assert "| ARN | 3.00 ± 2.65 (1.00-6.00) | 3.00 ± 1.00 (2.00-4.00) (seen) |" in text
    assert "| none | 1.00 | 100.00 |" in text


def test_a_repeated_seed_or_a_missing_column_is_refused():
    with pytest.raises(ArnkitError, match="seed 0 twice"):
        spread.spread_rows(_rows(), {"arn": ("ARN", 0), "arn@b": ("ARN", 0)})
    rows = [r for r in _rows() if not (r["defense"] == "arn@c" and r["label"] == "pgd_n")]
    with pytest.raises(ArnkitError, match="pgd_n is missing for arn@c") as missing:
        spread.spread_rows(rows, {"arn": ("ARN", 0), "arn@b": ("ARN", 1), "arn@c": ("ARN", 2)})
    assert "score every seed on the same attacks" in str(missing.value)


def _bench():
    spec = importlib.util.spec_from_file_location("seed_spread", REPO / "bench" / "seed_spread.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _write_run(ws: Path, folder: str, name: str, seed: int, **fields) -> dict:
    run = ws / "defenses" / folder
    run.mkdir(parents=True)
    (run / f"{name}.keras").write_bytes(b"stand-in")
    record = {"key": name.split("@")[0], "label": fields.pop("label", "arn_pgd_n"), "seed": seed,
              "options": {"recipe": "default", "steps": 3000}, "seen": ["pgd_n"], "steps": 3000,
              "adaptive": None, "target_fingerprint": "t0", "recipe": "default",
              "defense_path": f"defenses/{folder}/{name}.keras", **fields}
    (run / "record.json").write_text(json.dumps(record))
    return {"name": name, "path": f"defenses/{folder}/{name}.keras"}


def test_bench_groups_runs_that_differ_only_by_seed(tmp_path):
    ws = tmp_path / "ws"
    defenses = [{"name": "none", "path": ""},
                _write_run(ws, "a.d", "arn", 0), _write_run(ws, "b.d", "arn@b", 1), _write_run(ws, "c.d", "arn@c", 2),
                # Same label, another recipe: a group of its own, named by its recipe.
                _write_run(ws, "d.d", "arn@d", 0, options={"recipe": "paper", "steps": 3000}, recipe="paper")]
    rows = _rows() + [_row("arn@d", "clean", 9.0), _row("arn@d", "pgd_n", 9.0, seen=True)]
    results_path = ws / "evaluations" / "x.d" / "results.json"
    results_path.parent.mkdir(parents=True)
    results_path.write_text(json.dumps({"defenses": defenses, "rows": rows, "title": "t", "split": "test", "n": 100}))
    out, as_json = tmp_path / "spread.md", tmp_path / "spread.json"
    assert _bench().main([str(results_path), "--out", str(out), "--json", str(as_json)]) == 0
    text = out.read_text()
    assert "| arn_pgd_n | 3.00 ± 2.65 (1.00-6.00) |" in text
    assert "| arn_pgd_n [paper] | 9.00 | 9.00 (seen) |" in text
    saved = json.loads(as_json.read_text())["rows"]
    assert {r["defense"] for r in saved} == {"none", "arn_pgd_n", "arn_pgd_n [paper]"}


def test_robust_classifiers_on_the_evaluations_sets_keep_one_row_per_seed():
    """`--robust-on-target`: each classifier is scored on every column's set and on the clean images of the
    same indices, with the evaluation's worst case (wrong clean or under any column); two seeds of one recipe
    stay two rows (the old robust_transfer keyed them by recipe and kept one)."""
    bench = _bench()
    labels = np.array([0, 1, 2, 3])
    clean = np.zeros((4, 2, 2, 1), np.float32)
    adv = np.ones((4, 2, 2, 1), np.float32)
    sets = {"pgd_n": (adv, labels, clean), "fwa_n@0.4": (adv * 2, labels, clean), "pgd_n@0.4": (adv * 2, labels, clean)}
    # Seed 0 is right on clean, wrong on image 0 under pgd_n and image 1 under fwa; seed 1 is always wrong on 3.
    def seed0(x):
        pred = labels.copy()
        if x.max() == 1:
            pred[0] = 9
        if x.max() == 2:
            pred[1] = 9
        return pred
    def seed1(x):
        pred = labels.copy()
        pred[3] = 9
        return pred
    rows = bench.score_on_sets(sets, {"a on L": seed0, "b on L": seed1}, {"a on L": ["pgd_n"], "b on L": ["pgd_n"]})
    cells = {(r["defense"], r["label"]): r for r in rows}
    assert [r["label"] for r in rows[:5]] == ["clean", "pgd_n", "fwa_n@0.4", "pgd_n@0.4", "worst case"]
    assert cells[("a on L", "clean")]["error"] == 0.0
    assert cells[("a on L", "pgd_n")]["error"] == 25.0 and cells[("a on L", "pgd_n")]["seen"]
    # seen is the exact column, as in an evaluation: PGD_N at eps .4 is not the attack trained on
    assert not cells[("a on L", "fwa_n@0.4")]["seen"] and not cells[("a on L", "pgd_n@0.4")]["seen"]
    assert cells[("a on L", "worst case")]["error"] == 50.0
    assert cells[("b on L", "worst case")]["error"] == 25.0 and cells[("b on L", "clean")]["error"] == 25.0
    assert cells[("a on L", "pgd_n")]["n"] == 4 and cells[("a on L", "pgd_n")]["error_ci"][0] > 0
    grouped = spread.spread_rows(rows, {"a on L": ("AT_PGD on L", 0), "b on L": ("AT_PGD on L", 1)})
    worst = next(r for r in grouped if r["label"] == "worst case")
    assert worst["values"] == [50.0, 25.0] and worst["mean"] == pytest.approx(37.5)


def test_groups_of_one_label_with_other_options_get_distinct_names():
    """Two AT_PGD schedules (4 and 10 epochs) in one workspace, 3 seeds each: two groups, never one group with
    each seed twice (which spread_rows refuses)."""
    bench = _bench()
    names: dict[str, str] = {}
    records = [{"key": "at_pgd", "label": "at_pgd", "options": {"epochs": e}, "seed": s} for e in (4, 10) for s in range(3)]
    got = [bench.group_name(names, *bench.group_of(r)) for r in records]
    assert got[0] == got[1] == got[2] == "at_pgd" and got[3] == got[4] == got[5] != "at_pgd"
    assert got[3].startswith("at_pgd ") and len(set(got)) == 2


def test_the_sets_cache_key_uses_the_evaluations_limit():
    bench = _bench()
    assert bench.set_limit({"n": 1000}, 10_000) == 1000
    assert bench.set_limit({"n": 1148}, 1148) == 0  # `--limit 0`: the whole split


def test_robust_transfer_refuses_several_seeds_of_one_recipe(tmp_path):
    """bench/robust_transfer.py keys its rows by recipe: given three AT_PGD seeds it would have kept one of
    them silently. It says so in one line instead, before loading anything."""
    spec = importlib.util.spec_from_file_location("robust_transfer", REPO / "bench" / "robust_transfer.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    paths = [str(tmp_path / f"defenses/mnist-at_pgd-{h}.d/at_pgd.keras") for h in ("aaa", "bbb")]
    with pytest.raises(SystemExit) as refused:
        module.crafted_on_target(tmp_path, paths)
    assert "several runs of one recipe (seeds?)" in str(refused.value) and "--robust-on-target" in str(refused.value)


def test_seeds_script_scores_only_the_runs_it_trained_on_test():
    """A recipe search's candidates share the workspace: `--defense all` would score them on test."""
    import subprocess

    script = Path(__file__).resolve().parents[1] / "bench" / "seeds.sh"

    def plan(*args: str, **env: str) -> list[str]:
        return subprocess.run(["bash", str(script), *args], cwd=script.parents[1], capture_output=True, text=True,
                              env={"DRY_RUN": "1", "PATH": "/usr/bin:/bin", **env}, check=True).stdout.splitlines()

    lines = plan("mnist", "WS", "1,2", ROWS="adaptive,at_pgd")
    trains = [line for line in lines if line.startswith("arnkit train")]
    assert len(trains) == 4 and all("--eval-limit 16" in line for line in trains)
    assert sum("--adaptive" in line for line in trains) == 2
    [evaluation] = [line for line in lines if line.startswith("arnkit evaluate")]
    assert "--defense none,<run 1>,<run 2>,<run 3>,<run 4> " in evaluation and "--split test" in evaluation
    assert "--defense all" not in "\n".join(lines)
    [given] = [line for line in plan("lisa", "WS", ROWS="-", DEFENSES="none,a.keras") if "evaluate" in line]
    assert "--defense none,a.keras --attack ap1,ap2,ap3,ap4 --split test --limit 0" in given
