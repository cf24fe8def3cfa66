"""ARN recipes as data (issue 29): `arnkit train --recipe NAME`, its record, its refusals, `arnkit defenses`, and
a contract every row of `arnkit.defenses.arn_recipes.RECIPES` meets on MNIST and LISA."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from arnkit.defenses import arn_recipes
from arnkit.errors import ArnkitError
from arnkit_cli.main import app

REPO = Path(__file__).resolve().parents[1]
# Tiny runs on the synthetic set; `width` overrides every recipe's (the paper's is "default").
FAST = {"seen": "fgsm,pgd_n", "width": "tiny", "steps": 3, "pool_size": 64, "batch_size": 16, "eval_limit": 16,
        "checkpoint_every": 3}
# Today's paper-objective network, flag by flag (arnkit/presets.py: "the paper's own recipe").
PAPER_FLAGS = {"objective": "paper", "learning_rate": 1e-4, "lr_schedule": "constant", "guide_weight": 0.0}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    from arnkit.pipeline.train import train_defense

    ws = tmp_path_factory.mktemp("recipes")
    by_recipe = train_defense("synthetic", workspace=ws, recipe="paper", **FAST)
    by_flags = train_defense("synthetic", workspace=ws, **PAPER_FLAGS, **FAST)
    return ws, by_recipe, by_flags


def _weights(path: str) -> list[np.ndarray]:
    from arnkit import defenses

    return [np.asarray(w) for w in defenses.load(path).get_weights()]


def test_recipe_paper_reproduces_the_paper_objective_network_weight_for_weight(runs):
    _, by_recipe, by_flags = runs
    assert by_recipe["recipe"] == "paper" and by_flags["recipe"] == "default"
    assert by_recipe["config"] == by_flags["config"] and by_recipe["config"]["learning_rate"] == 1e-4
    # two recipes never share a run folder, even with the same settings
    assert by_recipe["defense_path"] != by_flags["defense_path"] and not by_flags["reused"]
    assert "-arn-paper-" in by_recipe["defense_path"]
    mine, theirs = _weights(by_recipe["defense_path"]), _weights(by_flags["defense_path"])
    assert len(mine) == len(theirs) > 0
    for a, b in zip(mine, theirs, strict=True):
        np.testing.assert_array_equal(a, b)
    assert by_recipe["defense_fingerprint"] == by_flags["defense_fingerprint"]


def test_record_names_the_recipe_round_trips_and_is_found_by_the_registry(runs):
    from arnkit.defenses import registry
    from arnkit.runs.defense_record import DefenseRecord, read_record

    ws, by_recipe, by_flags = runs
    settings = by_recipe["recipe_settings"]
    assert settings["width"] == "tiny" and settings["overridden"] == ["width"]  # the flag beat the recipe's
    assert settings["learning_rate"] == 1e-4 and settings["guide_weight"] == 0.0 and settings["adaptive"] is False
    on_disk = read_record(Path(by_recipe["defense_path"]).parent / "record.json")
    record = DefenseRecord.from_dict(on_disk)
    again = DefenseRecord.from_dict(record.to_dict())
    assert again.to_dict() == record.to_dict()
    assert again.options["recipe"] == "paper" and again.to_dict()["recipe_settings"] == settings
    found = registry.find_defenses(ws, "synthetic", "arn", recipe="paper")
    assert [r.defense_path for r in found] == [by_recipe["defense_path"]]
    assert [r.defense_path for r in registry.find_defenses(ws, "synthetic", "arn", recipe="default")] == [
        by_flags["defense_path"]]


def test_default_recipe_keeps_the_run_folder_of_a_run_without_recipe(runs):
    from arnkit.pipeline.train import train_defense

    ws, _, by_flags = runs
    named = train_defense("synthetic", workspace=ws, recipe="default", **PAPER_FLAGS, **FAST)
    assert named["reused"] is True and named["defense_path"] == by_flags["defense_path"]


def test_unknown_recipe_and_recipe_of_another_defense_are_one_line(tmp_path):
    env = {"COLUMNS": "200"}
    bad = CliRunner().invoke(app, ["train", "--dataset", "synthetic", "--recipe", "strongest",
                                   "--workspace", str(tmp_path / "ws")], env=env)
    assert bad.exit_code == 1 and len(bad.output.strip().splitlines()) == 1
    assert "unknown ARN recipe 'strongest'; known recipes: default, paper, adaptive" in bad.output
    bad = CliRunner().invoke(app, ["train", "--dataset", "synthetic", "--defense", "hgd", "--recipe", "paper",
                                   "--workspace", str(tmp_path / "ws")], env=env)
    assert bad.exit_code == 1 and "--recipe does not apply to --defense hgd" in bad.output
    assert not (tmp_path / "ws").exists()  # refused before anything was written
    with pytest.raises(ArnkitError, match="known recipes: default, paper"):
        arn_recipes.resolve("Nope", {})


def test_tensorflow_only_recipe_under_jax_is_refused_naming_the_part(tmp_path):
    env = {**os.environ, "KERAS_BACKEND": "jax", "JAX_PLATFORMS": "cpu", "COLUMNS": "300",
           "PYTHONPATH": str(REPO)}
    code = "import sys; from arnkit_cli.main import main; sys.argv = ['arnkit', *sys.argv[1:]]; main()"
    done = subprocess.run([sys.executable, "-c", code, "train", "--dataset", "synthetic", "--recipe", "adaptive",
                           "--workspace", str(tmp_path / "ws")], env=env, capture_output=True, text=True,
                          timeout=180, cwd=tmp_path)
    assert done.returncode == 1, done.stderr[-2000:]
    assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert ("recipe 'adaptive' needs tensorflow for its adaptive training (white-box PGD through the defense while "
            "it trains); this process runs Keras on jax: set KERAS_BACKEND=tensorflow") in done.stderr
    assert "choose a recipe that trains on jax: default, paper" in done.stderr
    assert not list((tmp_path / "ws").glob("targets/*.keras"))  # before the target trains


def test_arnkit_defenses_lists_the_recipes(monkeypatch):
    from arnkit_cli import common

    # The table console is made at import, its width fixed then (80 under xdist): widen it so no cell wraps.
    monkeypatch.setattr(common.stdout, "width", 250)
    result = CliRunner().invoke(app, ["defenses", "--json"])
    assert result.exit_code == 0, result.output
    arn = next(row for row in json.loads(result.stdout) if row["key"] == "arn")
    listed = {r["name"]: r for r in arn["recipes"]}
    assert list(listed) == list(arn_recipes.RECIPES) and {"default", "paper", "adaptive"} <= set(listed)
    assert listed[arn_recipes.DEFAULT_RECIPE]["default"] is True
    assert listed["paper"]["settings"]["learning_rate"] == 1e-4
    text = CliRunner().invoke(app, ["defenses"], env={"COLUMNS": "250"})
    assert text.exit_code == 0, text.output
    for name, recipe in listed.items():
        assert name in text.stdout and recipe["description"][:30] in text.stdout
        if not recipe["measured"]:
            assert "not measured yet" in text.stdout


# ------------------------------------------------------------------------------------------- contract ---

@pytest.mark.parametrize("dataset", ["mnist", "lisa"])
@pytest.mark.parametrize("name", list(arn_recipes.RECIPES))
def test_every_recipe_resolves_to_a_valid_config(name, dataset):
    from arnkit.defenses.arn.config import ARNConfig
    from arnkit.defenses.arn.recipe import recipe_config
    from arnkit.runs.context import RunContext

    recipe = arn_recipes.get(name)
    assert recipe.description and set(recipe.train) <= set(arn_recipes.TRAIN_OPTIONS)
    ctx = RunContext.build(dataset, require_data=False)
    config, width, steps, batch = recipe_config(ctx, arn_recipes.resolve(name, {}))
    assert isinstance(config, ARNConfig) and ARNConfig.from_dict(config.to_dict()) == config
    assert steps >= 1 and batch >= 1 and width == config.preset
    pinned = recipe.train
    for option, value in (("width", width), ("learning_rate", config.learning_rate),
                          ("lr_schedule", config.lr_schedule), ("guide_weight", config.guide_weight),
                          ("objective", config.objective), ("adaptive", config.adaptive)):
        if option in pinned:
            assert value == pinned[option], (option, value)
    # a recipe that trains adaptively says that part needs TensorFlow (JAX and torch do not step it)
    assert config.adaptive == ((arn_recipes.ADAPTIVE_PART, "tensorflow") in recipe.needs)
    for row in recipe.measured:  # measured rows carry where they came from
        assert row.command and row.machine and row.date and row.columns
    if name == "default":  # exactly the dataset's preset
        assert steps == ctx.preset.arn.steps and width == ctx.preset.arn.width
        assert config.guide_weight == ctx.preset.arn.guide_weight and not config.adaptive


def test_mnist_default_is_lr_1e4_the_leak_keeps_1e3_and_the_old_default_is_one_flag_away():
    from dataclasses import replace

    from arnkit.defenses.arn.recipe import recipe_config
    from arnkit.runs.context import RunContext

    ctx = RunContext.build("mnist", require_data=False)
    config, width, steps, _ = recipe_config(ctx, arn_recipes.resolve(None, {}))
    assert (config.learning_rate, width, config.guide_weight, steps) == (1e-4, "large", 5.0, 3000)
    # the leak was measured at 1e-3 (3 seeds on test): --adaptive and the adaptive recipe keep it
    for chosen in (arn_recipes.resolve(None, {"adaptive": True}), arn_recipes.resolve("adaptive", {})):
        assert recipe_config(ctx, chosen)[0].learning_rate == 1e-3
    # `--learning-rate 1e-3` trains exactly the config of the preset before the change, so its runs (keyed by the
    # resolved config; `default` is unkeyed) are found again
    before = replace(ctx.preset, arn=replace(ctx.preset.arn, learning_rate=1e-3))
    old = recipe_config(replace(ctx, preset=before), arn_recipes.resolve(None, {}))[0]
    assert recipe_config(ctx, arn_recipes.resolve(None, {"learning_rate": 1e-3}))[0] == old
    # LISA's default was chosen on its own val (docs/recipes.md) and keeps 1e-3
    assert recipe_config(RunContext.build("lisa", require_data=False), arn_recipes.resolve(None, {}))[0].learning_rate == 1e-3


# ------------------------------------------------------------------------------------------- harness ---

def _bench(name: str):
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, REPO / "bench" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_search_candidate_resolves_to_a_valid_config():
    from arnkit.defenses.arn.config import ARNConfig
    from arnkit.defenses.arn.recipe import recipe_config
    from arnkit.runs.context import RunContext

    ctx = RunContext.build("mnist", require_data=False)
    for name, recipe, options in _bench("recipe_search").candidates():
        flags = {k: v for k, v in options.items() if k != "config_overrides"}
        config, *_ = recipe_config(ctx, arn_recipes.resolve(recipe, flags, options.get("config_overrides")))
        assert ARNConfig.from_dict(config.to_dict()) == config, name
        for field, value in (options.get("config_overrides") or {}).items():
            assert getattr(config, field) == value, (name, field)
        if name.startswith("paper+"):  # a combination keeps its recipe's pins (lr 1e-4, no guidance)
            assert config.learning_rate == 1e-4 and not config.guide_weight, name
        if name.startswith("v1"):  # the base they were measured on: 1e-3 unless the lever is the rate
            assert config.learning_rate == (1e-4 if "lr=1e-4" in name else 1e-3), name


def test_search_covers_every_recipe_and_the_frontier_keeps_the_undominated():
    search, plot = _bench("recipe_search"), _bench("recipe_frontier")
    names = [name for name, _, _ in search.candidates()]
    assert [n for n in names if n.startswith("recipe:")] == [f"recipe:{r}" for r in arn_recipes.RECIPES]
    assert len(names) == len(set(names)) and all(recipe in arn_recipes.RECIPES for _, recipe, _ in
                                                  search.candidates())
    # made-up points (not measurements): b is beaten by a on every axis, c trades minutes for robustness
    points = {"a": {"gray": 1.0, "white": 5.0, "minutes": 10.0}, "b": {"gray": 2.0, "white": 6.0, "minutes": 11.0},
              "c": {"gray": 1.0, "white": 3.0, "minutes": 20.0}}
    assert plot.frontier(points) == {"a", "c"}
    rows = [{"candidate": "a", "gray_worst_value": 1.0, "white_worst_case": 4.0, "train_minutes": 2.0},
            {"candidate": "a", "gray_worst_value": 3.0, "white_worst_case": None, "train_minutes": 4.0}]
    assert plot.means(rows)["a"] == {"gray": 2.0, "white": None, "minutes": 3.0, "seeds": 2}
    # with some white boxes run, a candidate without one is on no frontier (its third axis is unknown)
    partial = {**points, "d": {"gray": 0.5, "white": None, "minutes": 1.0}}
    assert plot.frontier(partial) == {"a", "c"}
    # with none run, the gray column stands in for the white box: d (0.5, -, 1 minute) beats all
    assert plot.frontier({k: {**p, "white": None} for k, p in partial.items()}) == {"d"}


def test_frontier_png_draws_a_partial_white_box(tmp_path):
    from PIL import Image

    plot = _bench("recipe_frontier")
    # made-up rows (not measurements): one candidate with a white box, one without
    common = {"seed": 0, "split": "val", "cpu": "Some CPU", "date": "2026-12-07", "train_minutes": 5.0}
    rows = [{**common, "candidate": "recipe:default", "gray_worst_value": 40.0, "white_worst_case": 99.0},
            {**common, "candidate": "default+adaptive", "gray_worst_value": 60.0, "white_worst_case": None,
             "train_minutes": 50.0}]
    (tmp_path / "r.json").write_text(json.dumps({"rows": rows}))
    out = plot.plot(tmp_path / "r.json", tmp_path / "f.png")
    with Image.open(out) as image:
        assert image.format == "PNG" and image.width > 300


def test_published_rows_are_the_seed_means_and_arnkit_defenses_lists_them(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from arnkit_cli.main import app

    search = _bench("recipe_search")
    # made-up search rows (not measurements): two seeds of recipe:paper, one lever (never published)
    common = {"split": "val", "dataset": "lisa", "cpu": "Some CPU", "avx512f": False, "date": "2026-12-07",
              "command": "python bench/recipe_search.py --dataset lisa", "white_worst_case": None}
    results = {"rows": [
        {**common, "candidate": "recipe:paper", "recipe": "paper", "seed": 0, "train_minutes": 10.0,
         "gray": {"clean": 2.0, "ap1": 10.0}},
        {**common, "candidate": "recipe:paper", "recipe": "paper", "seed": 1, "train_minutes": 12.0,
         "gray": {"clean": 4.0, "ap1": 20.0}},
        {**common, "candidate": "default+cosine", "recipe": "default", "seed": 0, "train_minutes": 9.0,
         "gray": {"clean": 1.0, "ap1": 1.0}}]}
    target = tmp_path / "recipe_measurements.json"
    target.write_text(json.dumps({"rows": [{"recipe": "default", "dataset": "mnist", "split": "val", "seeds": 1,
                                            "columns": {"clean": 1.0}, "command": "c", "machine": "m",
                                            "date": "2026-12-01"}]}))
    (row,) = search.publish(results, target)
    assert row["columns"] == {"clean": 3.0, "ap1": 15.0, "train_minutes": 11.0} and row["seeds"] == 2
    assert row["machine"] == "Some CPU (avx512f: no)" and row["recipe"] == "paper"
    stored = json.loads(target.read_text())["rows"]
    assert [(r["recipe"], r["dataset"]) for r in stored] == [("default", "mnist"), ("paper", "lisa")]  # kept + new

    monkeypatch.setattr(arn_recipes, "MEASUREMENTS", target)
    arn_recipes.measurements.cache_clear()
    try:
        assert arn_recipes.get("paper").measured[0].columns["ap1"] == 15.0
        result = CliRunner().invoke(app, ["defenses", "--json"])
        assert result.exit_code == 0, result.output
        arn = next(row for row in json.loads(result.stdout) if row["key"] == "arn")
        (listed,) = next(r for r in arn["recipes"] if r["name"] == "paper")["measured"]
        assert listed["columns"]["ap1"] == 15.0 and listed["date"] == "2026-12-07" and listed["split"] == "val"
        assert CliRunner().invoke(app, ["defenses"]).exit_code == 0  # the table renders the measured row
        target.write_text("{not json")
        arn_recipes.measurements.cache_clear()
        with pytest.raises(ArnkitError, match="recipe_measurements.json is damaged") as damaged:
            _ = arn_recipes.get("paper").measured
        assert ("restore it from the arnkit release or git, or republish it with bench/recipe_search.py --publish"
                in str(damaged.value))
    finally:
        arn_recipes.measurements.cache_clear()


def test_search_resumes_and_a_gray_only_row_gains_its_white_box_in_place(tmp_path, monkeypatch):
    search = _bench("recipe_search")
    calls = []

    def fake_spawn(args, name, seed, out):  # made-up rows: the harness's bookkeeping only
        calls.append((name, seed, args.white, args.white_limit))
        row = {"candidate": name, "recipe": "default", "seed": seed, "gray": {"clean": 1.0}}
        return {**row, "white": {"pgd_n": 50.0}, "white_worst_case": 50.0} if args.white else row

    monkeypatch.setattr(search, "spawn", fake_spawn)
    argv = ["--workspace", str(tmp_path), "--only", "recipe:default,recipe:paper"]
    search.main(argv)
    search.main(argv)  # everything finished: nothing runs again
    assert calls == [("recipe:default", 0, False, 100), ("recipe:paper", 0, False, 100)]
    search.main([*argv, "--white", "--white-limit", "20"])
    search.main([*argv, "--white"])
    assert calls[2:] == [("recipe:default", 0, True, 20), ("recipe:paper", 0, True, 20)]
    rows = json.loads((tmp_path / "recipe-search" / "mnist-val.json").read_text())["rows"]
    assert [(r["candidate"], r["white_worst_case"]) for r in rows] == [("recipe:default", 50.0),
                                                                      ("recipe:paper", 50.0)]


def test_two_searches_sharing_a_folder_keep_each_others_rows(tmp_path, monkeypatch):
    search = _bench("recipe_search")
    results = tmp_path / "recipe-search" / "mnist-val.json"

    def fake_spawn(args, name, seed, out):  # made-up rows; while this one "trains", another search finishes a row
        if name == "recipe:default":
            search.write_row(out, "mnist-val", {"candidate": "v1+guide=10", "recipe": "default", "seed": 0})
        return {"candidate": name, "recipe": "default", "seed": seed, "gray": {"clean": 1.0}}

    monkeypatch.setattr(search, "spawn", fake_spawn)
    search.main(["--workspace", str(tmp_path), "--only", "recipe:default,recipe:paper"])
    rows = json.loads(results.read_text())["rows"]
    assert sorted(r["candidate"] for r in rows) == ["recipe:default", "recipe:paper", "v1+guide=10"]
    assert "v1+guide=10" in (tmp_path / "recipe-search" / "mnist-val.csv").read_text()


def test_rows_stored_under_the_old_base_name_are_renamed_once_to_v1(tmp_path, monkeypatch):
    search = _bench("recipe_search")
    monkeypatch.setattr(search, "spawn", lambda args, name, seed, out: {"candidate": name, "seed": seed})
    folder = tmp_path / "recipe-search"
    folder.mkdir()
    # made-up rows: MNIST's default at 1e-3 (now `v1`), a lever on it, LISA's default (still the default)
    old = [{"candidate": "recipe:default", "dataset": "mnist", "seed": 0, "recipe_settings": {"learning_rate": 1e-3}},
           {"candidate": "default+guide=0", "dataset": "mnist", "seed": 0},
           {"candidate": "recipe:default", "dataset": "lisa", "seed": 0, "recipe_settings": {"learning_rate": 1e-3}}]
    (folder / "mnist-val.json").write_text(json.dumps({"rows": old}))
    search.main(["--workspace", str(tmp_path), "--only", "v1+guide=0,recipe:paper"])  # v1+guide=0 is found done
    stored = json.loads((folder / "mnist-val.json").read_text())["rows"]
    assert [r["candidate"] for r in stored] == ["v1", "v1+guide=0", "recipe:default", "recipe:paper"]
    known = {name for name, _, _ in search.candidates()}
    assert {"v1", "v1+guide=0", "recipe:default"} <= known and not any(n.startswith("default+") for n in known)


def test_merge_replaces_the_same_pairs_and_the_table_shows_seed_means(tmp_path, capsys):
    search = _bench("recipe_search")
    # made-up rows (not measurements): two seeds of one candidate, a white box on one only
    gray = {"clean": 1.0, "pgd_n": 2.0, "aa_n": 4.0, "worst case": 4.0}
    row = {"recipe": "default", "gray_none": {**gray, "pgd_n": 100.0}, "gray_worst_column": "aa_n",
           "train_minutes": 10.0}
    mine = [{**row, "candidate": "recipe:default", "seed": 0, "gray": gray, "gray_worst_value": 4.0},
            {**row, "candidate": "recipe:default", "seed": 1, "gray": {**gray, "aa_n": 6.0}, "gray_worst_value": 6.0}]
    theirs = [{**mine[0], "white_worst_case": 30.0, "white_limit": 100}]
    assert search.merged(mine, theirs) == [mine[1], theirs[0]]
    lines = search.table(search.merged(mine, theirs)).splitlines()
    assert lines[0].startswith("| candidate | seeds | clean | pgd_n | aa_n | worst column")  # Table 1's order
    assert lines[2] == "| NONE | | 1.00 | 100.00 | 4.00 | | | |"
    # the white box is shown only where every seed has one
    assert lines[3] == "| recipe:default | 2 | 1.00 | 2.00 | 5.00 | aa_n 5.00 | - | 10.00 |"
    # the worst column is that of the seed means, not of the first seed (seed 0 alone: pgd_n 5 > aa_n 4)
    split = [{**mine[0], "gray": {**gray, "pgd_n": 5.0}}, {**mine[1], "gray": {**gray, "pgd_n": 1.0, "aa_n": 8.0}}]
    assert search.table(split).splitlines()[3] == "| recipe:default | 2 | 1.00 | 3.00 | 6.00 | aa_n 6.00 | - | 10.00 |"
    (tmp_path / "recipe-search").mkdir()
    (tmp_path / "recipe-search" / "mnist-val.json").write_text(json.dumps({"rows": mine[1:]}))
    (tmp_path / "other.json").write_text(json.dumps({"rows": theirs}))
    search.main(["--workspace", str(tmp_path), "--merge", str(tmp_path / "other.json"), "--table"])
    assert "| recipe:default | 2 |" in capsys.readouterr().out
    stored = json.loads((tmp_path / "recipe-search" / "mnist-val.json").read_text())["rows"]
    assert [(r["seed"], r.get("white_worst_case")) for r in stored] == [(1, None), (0, 30.0)]
