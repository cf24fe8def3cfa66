"""The 95% interval per table cell: Wilson's values, and their place in results.json / .md / .csv."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest

from arnkit.errors import ArnkitError
from arnkit.evaluation import metrics, tables


@pytest.mark.parametrize(("wrong", "n", "lo", "hi"), [
    # Published values: 5 of 10 -> (0.2366, 0.7634); 0 of 10 -> (0, z^2 / (n + z^2)) = (0, 0.2775).
    (5, 10, 23.66, 76.34),
    (0, 10, 0.0, 27.75),
    (10, 10, 72.25, 100.0),
    # 81 of 263 (Wilson's worked example in Newcombe 1998, method 3): 0.2553 to 0.3662.
    (81, 263, 25.53, 36.62),
])
def test_wilson_matches_known_values(wrong, n, lo, hi):
    got = metrics.wilson_interval(wrong, n)
    assert got == pytest.approx((lo, hi), abs=0.01)


def test_wilson_narrows_with_more_images_and_contains_the_rate():
    small, large = metrics.wilson_interval(12, 100), metrics.wilson_interval(120, 1000)
    assert small[0] < 12.0 < small[1] and large[0] < 12.0 < large[1]
    assert large[1] - large[0] < small[1] - small[0]
    assert metrics.wilson_interval(0, 0) == (0.0, 100.0)
    with pytest.raises(ArnkitError, match="impossible"):
        metrics.wilson_interval(11, 10)


def test_error_interval_recovers_the_count_from_a_rounded_rate():
    # 1/3 of 999 images: the rate is stored rounded to 4 decimals; the count (333) comes back exact.
    rate = round(100.0 * 333 / 999, 4)
    assert metrics.error_interval(rate, 999) == [round(v, 4) for v in metrics.wilson_interval(333, 999)]


def _rows() -> list[dict]:
    return [
        {"defense": "NONE", "threat_model": "gray", "attack": "pgd_n", "label": "PGD_N", "seen": False,
         "n": 200, "error": 41.5, "lower_bound": False, "seconds": 0.1},
        {"defense": "ARN", "threat_model": "gray", "attack": "pgd_n", "label": "PGD_N", "seen": True,
         "n": 200, "error": 3.0, "lower_bound": False, "seconds": 0.1},
    ]


def test_intervals_in_json_markdown_and_csv(tmp_path: Path):
    record = {"title": "synthetic: error rates (%)", "rows": _rows(), "sanity": []}
    files = tables.write_tables(tmp_path, "results", record)
    stored = json.loads(Path(files["json"]).read_text())["rows"]
    expected = {r["defense"]: metrics.error_interval(r["error"], r["n"]) for r in _rows()}
    assert {r["defense"]: r["error_ci"] for r in stored} == expected
    lo, hi = expected["NONE"]
    assert lo < 41.5 < hi and hi - lo > 5  # 200 images: several points wide

    markdown = Path(files["markdown"]).read_text()
    assert f"41.50 [{lo:.1f}, {hi:.1f}]" in markdown
    assert "95% Wilson score interval" in markdown

    parsed = list(csv.DictReader(io.StringIO(Path(files["csv"]).read_text())))
    by_defense = {r["defense"]: r for r in parsed}
    assert float(by_defense["ARN"]["error_lo"]) == expected["ARN"][0]
    assert float(by_defense["ARN"]["error_hi"]) == expected["ARN"][1]


def test_rows_written_before_intervals_keep_their_cells():
    # results.json written by an older arnkit (no error_ci): the report's cells read as before.
    row = _rows()[0]
    assert tables.cell_text(row) == "41.50"
    assert "[" not in tables.markdown_table([row])
