"""`arnkit report` is a file you can send (issue 31): one self-contained HTML page whose images all load in a
real browser from a COPIED workspace, records that store workspace-relative paths (old absolute ones still
read), damaged records listed instead of dropped, rates in %, AUC with 3 decimals, failed self-checks marked
in their cells, and headings that carry n, date and budget.

One real workspace (a tiny gray-box evaluation and a tiny LID detection on the synthetic set, ~25 s) is built
once for the module; the other tests write small hand-made records, so they need no TensorFlow."""

from __future__ import annotations

import base64
import json
import re
import shutil
import struct
import subprocess
import zlib
from pathlib import Path

import pytest
from typer.testing import CliRunner

from arnkit.pipeline.report import build_report
from arnkit.workspace import Workspace

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
# Counts, once the page has loaded, the images the browser could not decode (naturalWidth 0).
PROBE = ("<script>window.addEventListener('load', () => { const all = [...document.images];"
         "document.body.dataset.images = all.length;"
         "document.body.dataset.broken = all.filter(i => !i.complete || i.naturalWidth === 0).length; });</script>")


def _png(width: int = 2, height: int = 2, shade: int = 0) -> bytes:
    """A valid grayscale PNG, so hand-made records can point at real figures."""
    def chunk(kind: bytes, payload: bytes) -> bytes:
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))

    raw = b"".join(b"\x00" + bytes([shade] * width) for _ in range(height))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def _browser_body(html_file: Path, tmp_path: Path) -> str:
    """The <body ...> tag as headless Chromium leaves it once the page has loaded (PROBE's counts on it)."""
    probe = tmp_path / f"probe-{html_file.stem}.html"
    probe.write_text(html_file.read_text().replace("</body>", PROBE + "</body>"))
    out = subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=5000",
                          "--dump-dom", probe.as_uri()], capture_output=True, text=True, timeout=120)
    body = re.search(r"<body[^>]*>", out.stdout)
    assert body, out.stderr[-2000:]
    return body.group(0)


def _embedded(html: str) -> list[bytes]:
    return [base64.b64decode(m) for m in re.findall(r'src="data:image/png;base64,([^"]+)"', html)]


def _all_strings(obj):
    if isinstance(obj, dict):
        for v in obj.values():
            yield from _all_strings(v)
    elif isinstance(obj, list):
        for v in obj:
            yield from _all_strings(v)
    elif isinstance(obj, str):
        yield obj


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """A real workspace: a gray-box FGSM evaluation (grid figure) and an LID detection (ROC figure)."""
    from arnkit.pipeline.detect import detect
    from arnkit.pipeline.evaluate import evaluate

    ws = tmp_path_factory.mktemp("original") / "ws"
    evaluation = evaluate("synthetic", "fgsm", defenses="none", limit=32, workspace=ws, sanity_checks=False)
    detection = detect("lid", "synthetic", "fgsm", limit=64, adaptive_limit=0, workspace=ws)
    return ws, evaluation, detection


# ----------------------------------------------------------------------------------- relative paths ---

def test_new_records_store_no_absolute_paths(built):
    ws, evaluation, detection = built
    stored = [json.loads(p.read_text()) for p in [*ws.glob("evaluations/*.d/results.json"), *ws.glob("detection/*.json")]]
    assert len(stored) == 2
    strings = [s for record in stored for s in _all_strings(record)]
    assert not [s for s in strings if s.startswith("/") or str(ws) in s]
    assert "evaluations/" in stored[0]["grid_png"] and stored[0]["files"]["json"].endswith("results.json")
    # Callers of the library still get absolute paths to files that exist.
    assert Path(evaluation["files"]["json"]).is_absolute() and Path(evaluation["grid_png"]).is_file()
    assert Path(detection["roc_path"]).is_file()


def test_old_absolute_paths_are_re_rooted_under_the_current_workspace(tmp_path):
    ws = Workspace.resolve(tmp_path / "copy")
    (ws.root / "evaluations" / "a.d").mkdir(parents=True)
    (ws.root / "evaluations" / "a.d" / "grid.png").write_bytes(_png())
    old = "/somewhere/else/original/evaluations/a.d/grid.png"
    assert ws.locate(old) == ws.root / "evaluations" / "a.d" / "grid.png"
    assert ws.locate("evaluations/a.d/grid.png") == ws.root / "evaluations" / "a.d" / "grid.png"
    assert ws.locate("/elsewhere/user/model.keras") == Path("/elsewhere/user/model.keras")  # not ours: kept
    assert ws.relative(ws.root / "evaluations" / "a.d" / "grid.png") == "evaluations/a.d/grid.png"
    assert ws.located_paths({"grid_png": old, "label": "pgd_n"})["label"] == "pgd_n"


def test_copied_workspace_report_shows_the_copys_images(built, tmp_path):
    """A results.json written by an older arnkit holds the ORIGINAL's absolute paths; the copy's report must
    embed the copy's files even while the original still exists."""
    ws, _, _ = built
    copy = tmp_path / "copy"
    shutil.copytree(ws, copy)
    results = next(copy.glob("evaluations/*.d/results.json"))
    record = json.loads(results.read_text())
    grid = record["grid_png"]
    record["grid_png"] = str(ws / grid)  # as an older arnkit wrote it
    results.write_text(json.dumps(record))
    marker = _png(3, 3, shade=200)
    (copy / grid).write_bytes(marker)  # the copy's grid differs from the original's

    html = Path(build_report(copy)["html"]).read_text()
    images = _embedded(html)
    assert marker in images and (ws / grid).read_bytes() not in images
    assert str(ws) not in html and "file:" not in html


@pytest.mark.skipif(CHROMIUM is None, reason="headless Chromium is not installed (apt-get install chromium)")
def test_copied_workspace_report_loads_every_image_in_chromium(built, tmp_path):
    ws, _, _ = built
    moved = tmp_path / "moved"
    shutil.copytree(ws, moved)
    original = tmp_path / "original-deleted"
    shutil.move(ws, original)  # the original is gone while the copy's report renders
    try:
        result = build_report(moved)
        html_file = Path(result["html"])
        html = html_file.read_text()
        assert html.count('src="data:image/png;base64,') == 2  # the grid and the ROC curve, embedded
        assert "src=\"evaluations" not in html and "src=\"/" not in html
        body = _browser_body(html_file, tmp_path)
        assert 'data-images="2"' in body and 'data-broken="0"' in body
        # The probe can fail: a page with a linked, missing image counts one broken image.
        bad = tmp_path / "bad.html"
        bad.write_text(f'<html><body><img src="{tmp_path / "missing.png"}"></body></html>')
        bad_body = _browser_body(bad, tmp_path)
        assert 'data-images="1"' in bad_body and 'data-broken="1"' in bad_body
    finally:
        shutil.move(original, ws)


# ---------------------------------------------------------------------------------- hand-made records ---

def _results(ws: Path, name: str, **changes) -> Path:
    folder = ws / "evaluations" / f"{name}.d"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "grid.png").write_bytes(_png())
    rows = [{"defense": d, "label": label, "attack": label.split("@")[0], "error": error, "n": 32, "seen": seen,
             "iterations": 100 if label != "clean" else None, "threat_model": "gray"}
            for d, label, error, seen in (("none", "clean", 1.0, False), ("none", "pgd_n", 100.0, False),
                                          ("arn", "clean", 1.5, False), ("arn", "pgd_n", 2.6, True),
                                          ("arn", "pgd_n@0.4", 6.1, False))]
    record = {"title": "mnist: error rates (%) under the gray threat model", "dataset": "mnist",
              "threat_model": "gray", "n": 32, "seed": 0, "created": "2026-12-01T10:00:00Z", "rows": rows,
              "defenses": [{"name": "none", "seen": []}, {"name": "arn", "seen": ["pgd_n", "pgd_t"]}],
              "attacks": [{"key": "pgd_n", "label": "pgd_n", "params": {}, "iterations": [100]},
                          {"key": "pgd_n", "label": "pgd_n@0.4", "params": {"eps": 0.4}, "iterations": [100]}],
              "sanity": [], "grid_png": f"evaluations/{name}.d/grid.png", "target": {"model": "lenet"}, **changes}
    (folder / "results.json").write_text(json.dumps(record))
    return folder


def test_damaged_record_is_listed_and_report_exits_0(tmp_path):
    from arnkit_cli.main import app

    ws = tmp_path / "ws"
    _results(ws, "mnist-gray-good")
    (ws / "defenses" / "arn-broken.d").mkdir(parents=True)
    (ws / "defenses" / "arn-broken.d" / "record.json").write_text('{"key": "arn", "defense_pa')  # cut mid-write
    (ws / "defenses" / "foreign.d").mkdir(parents=True)
    (ws / "defenses" / "foreign.d" / "record.json").write_text('{"key": "arn"}')  # valid JSON, not a record
    (ws / "evaluations" / "mnist-gray-bad.d").mkdir(parents=True)
    (ws / "evaluations" / "mnist-gray-bad.d" / "results.json").write_text("\x00garbage")

    out = CliRunner().invoke(app, ["report", "--workspace", str(ws)])
    assert out.exit_code == 0, out.output
    assert "Traceback" not in out.output
    assert "damaged: defenses/arn-broken.d/record.json: not valid JSON" in out.output.replace("\n", " ")
    text = (ws / "report.md").read_text()
    assert "- `defenses/arn-broken.d/record.json`: not valid JSON (line 1, column 16); delete it or rerun " \
           "`arnkit train`" in text
    assert "- `defenses/foreign.d/record.json`: not a defense record (no defense_path)" in text
    assert "- `evaluations/mnist-gray-bad.d/results.json`: not valid JSON" in text
    assert "delete it or rerun `arnkit evaluate`" in text
    assert "| arn | 1.50 (paper 1.16) | 2.60 (seen) (paper 1.85) | 6.10 (paper 15.27) |" in text  # the rest of the report is still there
    html = (ws / "report.html").read_text()
    assert "<code>defenses/arn-broken.d/record.json</code>" in html and "`" not in html


def test_detection_auc_has_3_decimals_and_rates_are_percent(tmp_path):
    ws = tmp_path / "ws"
    (ws / "detection").mkdir(parents=True)
    (ws / "detection" / "mnist-lid-pgd_n-abc.png").write_bytes(_png())
    (ws / "detection" / "mnist-lid-pgd_n-abc.json").write_text(json.dumps({
        "dataset": "mnist", "method": "lid", "attack": "pgd_n", "auc": 0.8600000000000001,
        "recall_adversarial": 0.75, "false_positive_rate": 0.125, "restored": {"recall": 0.05},
        "adaptive": {"auc": 0.51234}, "created": "2026-12-02T08:00:00Z",
        "roc_path": "/old/place/ws/detection/mnist-lid-pgd_n-abc.png"}))
    text = Path(build_report(ws)["markdown"]).read_text()
    assert "| mnist | lid | pgd_n | 0.860 | 75.0% | 12.5% | 5.0% | 0.512 | 2026-12-02 08:00:00 UTC |" in text
    assert "0.8600000000000001" not in text
    assert "![ROC: lid on mnist, pgd_n](detection/mnist-lid-pgd_n-abc.png)" in text  # the old path, re-rooted


def test_failed_check_is_marked_in_its_cell_and_in_the_evaluations_tables(tmp_path):
    from arnkit.evaluation import tables

    ws = tmp_path / "ws"
    checks = [{"defense": "arn", "attack": "pgd_n", "name": "iterations", "passed": False, "value": 3.0,
               "expected": "<= 0.5", "detail": "not converged"},
              {"defense": "none", "attack": "pgd_n", "name": "gradient", "passed": True, "value": 1.0,
               "expected": "> 0", "detail": ""}]
    folder = _results(ws, "mnist-gray-flagged", sanity=checks)
    text = Path(build_report(ws)["markdown"]).read_text()
    assert "| arn | 1.50 (paper 1.16) | 2.60 (seen) (paper 1.85) ! | 6.10 (paper 15.27) |" in text
    assert "| none | 1.00 (paper 0.64) | 100.00 (paper 100) | - |" in text  # a passed check marks nothing
    assert "'!' arn / pgd_n: failed self-check iterations; this number may be wrong." in text
    assert "- self-check `iterations` (arn, pgd_n): **FAILED** (! in the table)" in text

    record = json.loads((folder / "results.json").read_text())
    assert "| arn | 1.50 | 2.60 (seen) ! | 6.10 |" in tables.markdown_table(record["rows"], checks=checks)
    csv_rows = tables.csv_text(record["rows"], checks).splitlines()
    assert csv_rows[0].endswith(",failed_checks")
    assert [r.rsplit(",", 1)[1] for r in csv_rows[1:]] == ["", "", "", "iterations", ""]


def test_headings_carry_n_date_budget_and_every_figure(tmp_path):
    ws = tmp_path / "ws"
    _results(ws, "mnist-gray-small")
    big = _results(ws, "mnist-gray-big", n=1000, created="2026-12-03T09:30:00Z",
                   convergence={"iterations_png": "evaluations/mnist-gray-big.d/convergence-iterations.png",
                                "eps_png": "evaluations/mnist-gray-big.d/convergence-eps.png"})
    (big / "convergence-iterations.png").write_bytes(_png(4, 4))
    (big / "convergence-eps.png").write_bytes(_png(5, 5))
    result = build_report(ws)
    text = Path(result["markdown"]).read_text()
    assert "### mnist: error rates (%) under the gray threat model: n = 32, 2026-12-01 10:00:00 UTC" in text
    assert "### mnist: error rates (%) under the gray threat model: n = 1000, 2026-12-03 09:30:00 UTC" in text
    assert ("Threat model **gray**; n = 32 test images; default budget L-inf eps 0.3; pgd_n: default budget, "
            "100 iterations; pgd_n@0.4: eps 0.4, 100 iterations.") in text
    assert "![convergence: error vs iterations (mnist-gray-big.d)](evaluations/mnist-gray-big.d/convergence-iterations.png)" in text
    assert "![convergence: error vs eps (mnist-gray-big.d)]" in text
    html = Path(result["html"]).read_text()
    assert len(_embedded(html)) == 4  # two grids, two convergence curves
    assert "<strong>gray</strong>" in html and "**" not in html
    assert result["damaged"] == []


def test_each_column_states_the_budget_it_ran_with(built, tmp_path):
    """results.json records each column's resolved settings (the dataset's budget and the column's overrides),
    so the report states numbers, never "default budget"."""
    from arnkit.pipeline.evaluate import evaluate

    ws, _, _ = built
    result = evaluate("synthetic", "pgd_n,pgd_n@0.2", defenses="none", limit=8, workspace=ws, sanity_checks=False)
    budgets = {a["label"]: a["budget"] for a in json.loads(Path(result["files"]["json"]).read_text())["attacks"]}
    assert budgets["pgd_n"]["eps"] == 0.3 and budgets["pgd_n@0.2"]["eps"] == 0.2
    assert budgets["pgd_n"]["steps"] == 40 and "batch_size" not in budgets["pgd_n"]
    text = Path(build_report(ws)["markdown"]).read_text()
    assert "pgd_n: eps 0.3, 40 iterations; pgd_n@0.2: eps 0.2, 40 iterations." in text
    # One step: FGSM has no iteration count to state, and the line claims none.
    assert re.search(r"fgsm: eps 0\.3[.;]", text) and "default iterations" not in text
    evaluate("synthetic", "pgd_n", defenses="none", limit=8, split="val", workspace=ws, sanity_checks=False)
    assert "n = 8 val images" in Path(build_report(ws)["markdown"]).read_text()  # a val run says so
