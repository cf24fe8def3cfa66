"""The CLI's surface (issue 31): results on stdout and diagnostics on stderr, --json alone on stdout, -h and
shell completion, one name and one short flag per concept, no TensorFlow banners, progress lines that name
what differs, and a resumed run that says where it resumed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import typer.main
from typer.testing import CliRunner

from arnkit_cli.main import app

REPO = Path(__file__).resolve().parents[1]
ARNKIT = str(Path(sys.executable).with_name("arnkit"))
BANNERS = ("absl::InitializeLog", "oneDNN custom operations")
runner = CliRunner()


def invoke(*args: str, env: dict[str, str] | None = None):
    return runner.invoke(app, list(args), env=env)


def _commands() -> list[tuple[str, ...]]:
    """Every runnable command of the Typer app, as its argv path ('target', 'train')."""
    found = []

    def walk(command, path):
        subcommands = getattr(command, "commands", None)
        if subcommands:
            for name, sub in subcommands.items():
                walk(sub, (*path, name))
        else:
            found.append(path)

    walk(typer.main.get_command(app), ())
    return found


def _command(path: tuple[str, ...]):
    command = typer.main.get_command(app)
    for name in path:
        command = command.commands[name]
    return command


COMMANDS = _commands()
# One meaning per short flag, in every command (`-m` was --model in one command and --method in another).
SHORT_FLAGS = {"-a": "--attack", "-d": "--dataset", "-p": "--param", "-t": "--threat-model", "-w": "--workspace",
               "-o": "--output", "-m": "--method", "-v": "--verbose"}


# ------------------------------------------------------------------------------------ stdout / stderr ---

@pytest.mark.parametrize(("args", "title", "row"), [
    (("attacks",), "attacks", "pgd_n"),
    (("defenses", "--dataset", "synthetic"), "defenses (defaults for synthetic)", "at_pgd"),
    (("datasets",), "datasets", "mnist"),
])
def test_tables_go_to_stdout_and_json_is_alone(tmp_path, args, title, row):
    env = {"ARNKIT_WORKSPACE": str(tmp_path)}
    shown = invoke(*args, env=env)
    assert shown.exit_code == 0, shown.output
    assert title in shown.stdout and row in shown.stdout
    assert title not in shown.stderr and row not in shown.stderr
    as_json = invoke(*args, "--json", env=env)
    assert as_json.exit_code == 0, as_json.output
    json.loads(as_json.stdout)  # the whole of stdout is one JSON document ...
    assert as_json.stdout.count("\n") == 1 and "┃" not in as_json.stdout  # ... on one line, with no table


def test_attacks_piped_into_head_shows_the_table_without_banners():
    """`arnkit attacks | head` in a real shell: the table reaches the pipe, TF's C++ start-up log does not
    reach the terminal (it printed its pair twice: once per native library loaded)."""
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    done = subprocess.run(["bash", "-c", f"{ARNKIT} attacks | head -n 8"], capture_output=True, text=True,
                          env=env, cwd=REPO, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "attacks" in done.stdout and "fgsm" in done.stdout and "key" in done.stdout
    assert not [line for line in done.stderr.splitlines() if any(b in line for b in BANNERS)], done.stderr
    assert "absl::InitializeLog" not in done.stderr and "oneDNN custom operations" not in done.stderr


def test_verbose_or_the_users_level_leaves_tensorflow_its_own_log(monkeypatch):
    """The subprocess above shows the quiet default; here the two ways out of it, without a second TF import."""
    from arnkit_cli import tf_log

    monkeypatch.setitem(tf_log._quiet, "on", tf_log.quiet())  # restored after the test
    monkeypatch.setattr(tf_log, "USER_CHOSE_LEVEL", False)
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "3")
    tf_log.configure(verbose=True)  # arnkit --verbose: TensorFlow's own default level
    assert not tf_log.quiet() and "TF_CPP_MIN_LOG_LEVEL" not in os.environ
    tf_log.configure(verbose=False)
    assert tf_log.quiet() and os.environ["TF_CPP_MIN_LOG_LEVEL"] == "3"
    monkeypatch.setattr(tf_log, "USER_CHOSE_LEVEL", True)  # the user's TF_CPP_MIN_LOG_LEVEL=0 stands
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "0")
    tf_log.configure(verbose=False)
    assert not tf_log.quiet() and os.environ["TF_CPP_MIN_LOG_LEVEL"] == "0"


# --------------------------------------------------------------------------------- help and completion ---

@pytest.mark.parametrize("path", COMMANDS, ids=[" ".join(p) for p in COMMANDS])
def test_dash_h_is_help_and_flags_take_no_value(path):
    shown = invoke(*path, "-h", env={"COLUMNS": "200"})
    assert shown.exit_code == 0, shown.output
    assert "Usage:" in shown.stdout and "--help" in shown.stdout
    json_lines = [line for line in shown.stdout.splitlines() if "--json " in line]
    if "json_out" in {p.name for p in _command(path).params}:
        assert json_lines, shown.stdout
    assert not [line for line in json_lines if "<bool>" in line], json_lines  # `--json <bool>` read as a value
    assert "<bool>" not in shown.stdout


def test_shell_completion_shows_and_installs(tmp_path):
    shown = invoke("--show-completion", "bash", env={"HOME": str(tmp_path), "SHELL": "/bin/bash"})
    assert shown.exit_code == 0, shown.output
    assert "_arnkit_completion" in shown.stdout and "complete " in shown.stdout
    installed = invoke("--install-completion", "bash", env={"HOME": str(tmp_path), "SHELL": "/bin/bash"})
    assert installed.exit_code == 0, installed.output
    assert "arnkit" in (tmp_path / ".bashrc").read_text()


# --------------------------------------------------------------------------- one name per concept ---

@pytest.mark.parametrize("path", COMMANDS, ids=[" ".join(p) for p in COMMANDS])
def test_each_short_flag_means_one_thing_in_every_command(path):
    command = _command(path)
    for param in (p for p in command.params if p.param_type_name == "option"):
        names = list(param.opts) + list(param.secondary_opts)
        longs = [n for n in names if n.startswith("--")]
        for short in (n for n in names if not n.startswith("--")):
            assert short in SHORT_FLAGS, f"`arnkit {' '.join(path)}` {short} is not in the short-flag table"
            assert SHORT_FLAGS[short] in longs, (f"`arnkit {' '.join(path)}` {short} is {longs}, elsewhere "
                                                 f"{SHORT_FLAGS[short]}")
    root = typer.main.get_command(app)
    assert [p.opts for p in root.params if "-v" in p.opts] == [["--verbose", "-v"]]


def test_old_model_flag_is_a_hidden_alias_of_target(tmp_path):
    old = invoke("target", "train", "--dataset", "synthetic", "--model", "alexnet", "-w", str(tmp_path))
    assert old.exit_code == 1
    assert "note: --model is deprecated and will be removed; use --target alexnet" in old.stderr
    assert "unknown model 'alexnet'" in old.stderr
    new = invoke("target", "train", "--dataset", "synthetic", "--target", "alexnet", "-w", str(tmp_path))
    assert new.exit_code == 1 and "unknown model 'alexnet'" in new.stderr and "deprecated" not in new.stderr
    both = invoke("target", "train", "--dataset", "synthetic", "--target", "lenet", "--model", "lenet",
                  "-w", str(tmp_path))
    assert both.exit_code == 1 and "--model is the old spelling of --target; pass only --target" in both.stderr
    yours = invoke("target", "train", "--dataset", "synthetic", "--target", "mine.keras", "-w", str(tmp_path))
    assert yours.exit_code == 1 and "check it with `arnkit target check --target mine.keras`" in yours.stderr
    shown = invoke("target", "train", "-h", env={"COLUMNS": "200"})
    assert "--target" in shown.stdout and "--model" not in shown.stdout
    assert not (tmp_path / "targets").exists() or not list((tmp_path / "targets").iterdir())


def test_evaluate_takes_target_names_and_eps(tmp_path):
    from arnkit_cli.evaluate_cmds import attack_with_eps

    assert attack_with_eps("pgd_n,fgsm", 0.1) == "pgd_n@0.1,fgsm@0.1"
    assert attack_with_eps(None, 0.2) == "pgd_n@0.2" and attack_with_eps("pgd_n@0.4", None) == "pgd_n@0.4"
    both = invoke("evaluate", "--dataset", "synthetic", "--target", "lenet", "--target-model", "lenet",
                  "-w", str(tmp_path))
    assert both.exit_code == 1 and "--target-model is the old spelling of --target" in both.stderr
    twice = invoke("evaluate", "--dataset", "synthetic", "--attack", "pgd_n@0.2", "--eps", "0.1", "-w", str(tmp_path))
    assert twice.exit_code == 1 and "--eps sets the budget of each listed attack" in twice.stderr
    zoo_in_attack = invoke("attack", "--dataset", "synthetic", "--target", "lenet", "-w", str(tmp_path))
    assert zoo_in_attack.exit_code == 1
    assert "--target lenet: a zoo model name is taken by `arnkit target train`" in zoo_in_attack.stderr
    shown = invoke("evaluate", "-h", env={"COLUMNS": "200"})
    assert "--eps" in shown.stdout and "--target-model" not in shown.stdout
    assert not (tmp_path / "targets").exists() or not list((tmp_path / "targets").iterdir())


def test_detect_defense_takes_a_key_like_evaluate(tmp_path):
    missing = invoke("detect", "--dataset", "synthetic", "--defense", "arn", "-w", str(tmp_path))
    assert missing.exit_code == 1
    assert "--defense arn: no trained 'arn' defense for synthetic" in missing.stderr
    listed = invoke("detect", "--dataset", "synthetic", "--defense", "none,arn", "-w", str(tmp_path))
    assert listed.exit_code == 1 and "detect guards one defense at a time" in listed.stderr
    assert not (tmp_path / "targets").exists() or not list((tmp_path / "targets").iterdir())


# ------------------------------------------------------------------------------------ progress lines ---

def test_progress_names_the_budget_and_iterations():
    from arnkit.runs.adversarial import progress_label

    labels = {progress_label("pgd_n", "mnist/test", {"eps": eps, "steps": steps, "step_size": 0.01})
              for eps in (0.1, 0.3) for steps in (40, 80, 160)}
    assert len(labels) == 6
    assert progress_label("pgd_n", "mnist/test", {"eps": 0.3, "steps": 40}) == "pgd_n on mnist/test (eps 0.3, steps 40)"
    assert progress_label("cw_n", "mnist/test", {"confidence": 1.0}) == "cw_n on mnist/test"


def test_a_resumed_run_says_where_it_resumed(tmp_path):
    args = ["train", "--dataset", "synthetic", "--defense", "at_pgd", "--epochs", "1", "--train-limit", "32",
            "--attack-steps", "2", "--eval-limit", "16", "-w", str(tmp_path)]
    env = {"ARNKIT_PROGRESS": "plain"}
    first = invoke(*args, env=env)
    assert first.exit_code == 0, first.output
    assert "resuming from" not in first.stderr
    assert "pgd_n on synthetic/test (eps 0.3, steps 40): started" in first.stderr  # the report's craft, named
    assert "error rate (%) on synthetic" in first.stdout and "error rate" not in first.stderr
    # Stopped after its last checkpoint, before the record was written: the next run picks the checkpoint up.
    (record,) = tmp_path.glob("defenses/synthetic-at_pgd-*.d/record.json")
    record.unlink()
    again = invoke(*args, env=env)
    assert again.exit_code == 0, again.output
    lines = [line for line in again.stderr.splitlines() if "resuming from" in line]
    assert len(lines) == 1, again.stderr
    assert "resuming from epoch 1 of 1 (checkpoint " in lines[0] and "checkpoint.npz)" in lines[0]
