"""Progress that reaches a log: plain lines at a steady rate when stderr is not a terminal."""

from __future__ import annotations

import io
import json

import pytest
from typer.testing import CliRunner

from arnkit.errors import ArnkitError
from arnkit_cli.common import PlainProgress, RichProgress, make_progress
from arnkit_cli.main import app


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_plain_progress_throttles_and_reports_rate_eta_and_losses():
    stream, clock = io.StringIO(), FakeClock()
    progress = PlainProgress(interval=10, stream=stream, clock=clock)
    progress.start("ARN on mnist", 100)
    for _ in range(40):  # 40 steps over 20 s: lines at t=10 and t=20 only
        clock.now += 0.5
        progress.advance(1, adv=3.0, att=1.0, e_loss=0.25, g_loss=1.5, mse=2.0, nor=0.5)
    progress.finish()
    lines = stream.getvalue().splitlines()
    assert len(lines) == 4, lines
    assert lines[0].endswith("ARN on mnist: started, 100 to do")
    assert "ARN on mnist: 20/100 (20%)" in lines[1] and "2/s" in lines[1] and "ETA 0m40s" in lines[1]
    # losses first, then the other values, four at most
    assert lines[1].endswith("e_loss=0.25 g_loss=1.5 adv=3 att=1"), lines[1]
    assert "40/100 (40%)" in lines[2] and "ETA 0m30s" in lines[2]
    assert lines[3].endswith("ARN on mnist: done, 40 in 0m20s")
    progress.advance(5)  # after finish: ignored, no line
    assert len(stream.getvalue().splitlines()) == 4


def test_plain_progress_without_total_and_a_new_phase_closes_the_old_one():
    stream, clock = io.StringIO(), FakeClock()
    progress = PlainProgress(interval=0, stream=stream, clock=clock)
    progress.start("pools", None)
    clock.now = 2.0
    progress.advance(3)
    progress.start("report", 2)
    lines = stream.getvalue().splitlines()
    assert "pools: 3 1.5/s" in lines[1] and "ETA" not in lines[1]
    assert lines[2].endswith("pools: done, 3 in 0m02s") and lines[3].endswith("report: started, 2 to do")


def test_plain_progress_rate_of_a_resumed_run_leaves_out_the_steps_done_before():
    stream, clock = io.StringIO(), FakeClock()
    progress = PlainProgress(interval=10, stream=stream, clock=clock)
    progress.start("ARN", 1000)
    progress.advance(500)  # the checkpoint's steps, reported at once
    for _ in range(10):
        clock.now += 1.0
        progress.advance(1)
    line = stream.getvalue().splitlines()[1]
    assert "510/1000 (51%)" in line and " 1/s " in line and "ETA 8m10s" in line, line


def test_make_progress_modes(monkeypatch):
    monkeypatch.delenv("ARNKIT_PROGRESS", raising=False)
    # pytest captures stderr: not a terminal, so auto = plain lines, in --json mode too.
    assert isinstance(make_progress(False), PlainProgress) and isinstance(make_progress(True), PlainProgress)
    monkeypatch.setenv("ARNKIT_PROGRESS", "rich")
    assert isinstance(make_progress(False), RichProgress) and make_progress(False).enabled
    assert not make_progress(True).enabled
    monkeypatch.setenv("ARNKIT_PROGRESS", "off")
    assert not make_progress(False).enabled
    monkeypatch.setenv("ARNKIT_PROGRESS", "loud")
    with pytest.raises(ArnkitError, match="ARNKIT_PROGRESS='loud' is not a progress mode"):
        make_progress(False)
    monkeypatch.setenv("ARNKIT_PROGRESS", "plain")
    monkeypatch.setenv("ARNKIT_PROGRESS_INTERVAL", "soon")
    with pytest.raises(ArnkitError, match="ARNKIT_PROGRESS_INTERVAL must be a number of seconds >= 0"):
        make_progress(False)
    monkeypatch.setenv("ARNKIT_PROGRESS_INTERVAL", "-1")
    with pytest.raises(ArnkitError, match="got '-1'"):
        make_progress(False)


def test_a_bad_progress_setting_is_one_red_line_before_any_work(tmp_path, monkeypatch):
    monkeypatch.setenv("ARNKIT_PROGRESS", "loud")
    result = CliRunner().invoke(app, ["target", "train", "--dataset", "synthetic", "--workspace", str(tmp_path)])
    assert result.exit_code == 1 and "ARNKIT_PROGRESS='loud' is not a progress mode" in result.stderr
    assert not (tmp_path / "targets").exists()  # nothing was trained


def test_cli_writes_plain_progress_lines_to_a_log_and_keeps_stdout_json(tmp_path, monkeypatch):
    monkeypatch.delenv("ARNKIT_PROGRESS", raising=False)
    monkeypatch.setenv("ARNKIT_PROGRESS_INTERVAL", "0")
    result = CliRunner().invoke(app, ["target", "train", "--dataset", "synthetic", "--epochs", "1", "--json",
                                      "--workspace", str(tmp_path)])
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout)  # stdout holds the JSON object alone
    assert record["dataset"] == "synthetic" and isinstance(record["runtime"]["onednn"], bool)
    lines = [line for line in result.stderr.splitlines() if line.startswith("[arnkit ")]
    assert lines[0].endswith("train lenet on synthetic: started, 4 to do"), lines
    assert any("/4 (" in line and "/s" in line for line in lines[1:-1]), lines
    assert lines[-1].split("] ")[1].startswith("train lenet on synthetic: done, 4 in ")
