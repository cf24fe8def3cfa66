"""Mean ± spread over defense seeds (issue 30): the arithmetic, its refusals, and bench/seed_spread.py's grouping
of an evaluation's defenses by their run records."""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

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
