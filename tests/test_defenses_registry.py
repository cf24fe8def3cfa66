"""The defense registry's contract, parametrized over every registered recipe (a new baseline is covered the
day it lands), plus the lookup, the file header and the kind a path alone carries."""

import json
import os
import zipfile
from pathlib import Path

import keras
import numpy as np
import pytest

from arnkit import data
from arnkit.defenses import registry
from arnkit.defenses.files import HEADER, save_defense_file
from arnkit.defenses.records import DefenseRecord
from arnkit.errors import ArnkitError
from arnkit.pipeline.evaluate import evaluate
from arnkit.pipeline.target import ensure_target
from arnkit.runs.defense_record import read_record

RECIPES = sorted(registry.REGISTRY)
RECIPE_ORDER = list(registry.REGISTRY)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """Each recipe trained once on the synthetic set with its smoke options, in one shared workspace."""
    ws = tmp_path_factory.mktemp("registry")
    return ws, {key: registry.get(key).train("synthetic", workspace=ws, seed=0, **registry.get(key).smoke_options)
                for key in RECIPES}


@pytest.mark.parametrize("key", RECIPES)
def test_recipe_trains_exports_reloads_and_protects(trained, key):
    ws, records = trained
    recipe, record = registry.get(key), records[key]
    assert isinstance(record, DefenseRecord)
    assert (record.key, record.kind, record.dataset) == (key, recipe.kind, "synthetic")
    assert record.defense_fingerprint and record.target_fingerprint and record.arnkit_version
    # The exported file loads under safe_mode with plain Keras, and carries its kind.
    plain = keras.saving.load_model(record.defense_path, safe_mode=True, compile=False)
    with zipfile.ZipFile(record.defense_path) as archive:
        header = json.loads(archive.read(HEADER))
    assert header["kind"] == recipe.kind and header["key"] == key
    # A path alone gives a Defense of the right kind; so does the record.
    by_path, path_record = registry.load_file(record.defense_path, "synthetic")
    by_record = registry.load_record(record)
    assert by_path.kind == by_record.kind == recipe.kind
    assert path_record.defense_fingerprint == record.defense_fingerprint
    classifier, _ = ensure_target("synthetic", workspace=ws)
    x, y, meta = data.load_arrays("synthetic", "test", limit=8)
    logits = np.asarray(by_record.protect(classifier)(x, training=False))
    assert logits.shape == (8, meta.num_classes) and np.isfinite(logits).all()
    pred, restored = by_record.predict(classifier, x)
    assert np.array_equal(pred, np.argmax(logits, -1))
    assert (restored is not None) == by_record.restores
    if restored is not None:
        assert restored.shape == x.shape and np.allclose(restored, np.asarray(plain(x, training=False)), atol=1e-5)


@pytest.mark.parametrize("key", RECIPES)
def test_recipe_record_round_trips_and_is_found(trained, key):
    ws, records = trained
    record = records[key]
    assert DefenseRecord.from_dict(record.to_dict()) == record
    on_disk = registry.find_defenses(ws, "synthetic", key)
    assert [r.defense_path for r in on_disk] == [record.defense_path]
    assert DefenseRecord.from_dict(read_record(on_disk[0].record_path)).to_dict() == record.to_dict()
    stored = json.loads(open(on_disk[0].record_path).read())  # paths inside the workspace are stored relative
    assert not os.path.isabs(stored["defense_path"]) and Path(ws, stored["defense_path"]) == Path(record.defense_path)
    assert registry.find_defenses(ws, "synthetic", key, seen=record.seen, target_fingerprint=record.target_fingerprint)
    assert not registry.find_defenses(ws, "synthetic", key, seen=["jsma_t"])  # no recipe trains on it
    assert not registry.find_defenses(ws, "mnist", key)


@pytest.mark.parametrize("key", RECIPES)
def test_recipe_plugs_into_every_threat_model_and_detect(trained, key):
    """gray, white, bpda and transfer evaluations and the LID detector all take the defense by its file. A robust
    classifier is attacked directly under every threat model; a pre-processor is differentiated through
    (white), approximated (bpda) or stood in for by a surrogate (transfer)."""
    from arnkit.pipeline.detect import detect

    ws, records = trained
    record = records[key]
    surrogate = records["hgd" if key == "apeg" else "apeg"].defense_path
    errors = {}
    for threat in ("gray", "white", "bpda", "transfer"):
        result = evaluate("synthetic", "fgsm", defenses=record.defense_path, threat_model=threat, limit=16,
                          workspace=ws, sanity_checks=False, surrogate=surrogate if threat == "transfer" else None)
        assert [d["kind"] for d in result["defenses"]] == [record.kind]
        (row,) = [r for r in result["rows"] if r["label"] == "fgsm"]
        errors[threat] = row["error"]
        assert 0.0 <= row["error"] <= 100.0
    if record.kind == "classifier":
        assert len(set(errors.values())) == 1, errors  # one model, attacked directly every time
    guarded = detect("lid", "synthetic", "fgsm", limit=64, workspace=ws, defense_path=record.defense_path,
                     adaptive_limit=0)
    assert guarded["guarded"]["kind"] == record.kind
    if record.kind == "classifier":  # the detector guards the robust classifier itself
        assert guarded["target_fingerprint"] == record.defense_fingerprint and guarded["restored"] is None
    else:
        assert guarded["target_fingerprint"] == record.target_fingerprint and guarded["restored"]["n"] > 0


def test_white_box_self_checks_run_for_a_robust_classifier(trained):
    ws, records = trained
    result = evaluate("synthetic", "pgd_n", defenses=records["at_pgd"].defense_path, threat_model="white",
                      limit=16, iterations=5, workspace=ws)
    names = [c["name"] for c in result["sanity"]]
    assert names == ["gradient", "iterations", "gradient_free", "large_eps"], result["sanity"]  # no ordering: no pre-processor to go around


def test_surrogate_by_key_and_a_classifier_surrogate_are_checked(trained):
    ws, records = trained
    result = evaluate("synthetic", "fgsm", defenses="none", threat_model="transfer", surrogate="hgd", limit=8,
                      workspace=ws, sanity_checks=False)
    assert result["surrogate"]["fingerprint"] == records["hgd"].defense_fingerprint
    with pytest.raises(ArnkitError, match="is a robust classifier; the transfer threat model needs"):
        evaluate("synthetic", "fgsm", threat_model="transfer", surrogate="doa", limit=8, workspace=ws)
    with pytest.raises(ArnkitError, match="is a robust classifier"):
        evaluate("synthetic", "fgsm", threat_model="transfer", surrogate=records["at_pgd"].defense_path, limit=8,
                 workspace=ws)


def test_defense_all_puts_every_trained_defense_side_by_side(trained):
    ws, records = trained
    result = evaluate("synthetic", "fgsm", defenses="all", limit=8, workspace=ws, sanity_checks=False)
    assert [d["name"] for d in result["defenses"]] == ["none", *RECIPE_ORDER]
    with pytest.raises(ArnkitError, match="--defense all stands alone"):
        evaluate("synthetic", "fgsm", defenses="none,all", limit=8, workspace=ws)


def test_unknown_recipe_and_option_are_one_line(trained):
    ws, _ = trained
    with pytest.raises(ArnkitError, match="unknown defense 'hgd_x'.*known defenses: none, arn"):
        registry.get("hgd_x")
    with pytest.raises(ArnkitError, match="has no option warp"):
        registry.get("arn").train("synthetic", workspace=ws, warp=3)
    with pytest.raises(ArnkitError, match="unknown defense"):
        evaluate("synthetic", "fgsm", defenses="none,hgd_x", limit=8, workspace=ws)


def test_old_arn_record_reads_as_an_arn_preprocessor():
    old = {"dataset": "mnist", "seen": ["pgd_n", "pgd_t"], "defense_path": "/x/arn.keras", "ablate": ["adv"],
           "steps": 3000, "defense_fingerprint": "ab", "final_losses": {"l_e": 1.0}}
    record = DefenseRecord.from_dict(old)
    assert (record.key, record.kind, record.options["ablate"], record.options["steps"]) == \
        ("arn", "preprocessor", ["adv"], 3000)
    assert record.extra["final_losses"] == {"l_e": 1.0}
    assert record.matches(ablate=("adv",), steps=3000, seen=["pgd_n", "pgd_t"])
    assert not record.matches(ablate=[]) and not record.matches(seen=["pgd_t", "pgd_n"])
    with pytest.raises(ArnkitError, match="not a defense record"):
        DefenseRecord.from_dict({"dataset": "mnist"})


def test_a_robust_classifier_by_path_replaces_the_target(trained, tmp_path):
    """A classifier file must not be fed into the target as if it restored images."""
    ws, _ = trained
    classifier, _ = ensure_target("synthetic", workspace=ws)
    x, y, _ = data.load_arrays("synthetic", "test", limit=32)
    # A "robust classifier" that always answers class 0, saved with and without the arnkit header.
    inputs = keras.Input(shape=x.shape[1:])
    flat = keras.layers.Flatten()(inputs)
    # One score per synthetic class (4): a classifier of another class count is refused (test_checks_first.py).
    constant = keras.layers.Dense(4, kernel_initializer="zeros",
                                  bias_initializer=keras.initializers.Constant([5.0] + [0.0] * 3))(flat)
    model = keras.Model(inputs, constant)
    headed = save_defense_file(model, tmp_path / "robust.keras", key="at_pgd", kind="classifier", dataset="synthetic")
    plain = tmp_path / "plain" / "robust.keras"
    plain.parent.mkdir()
    model.save(plain)
    for path in (headed, plain):
        # A header-less classifier is one only when its kind is stated (tests/test_checks_first.py).
        defense, record = registry.load_file(path, "synthetic", kind="classifier" if path == plain else None)
        assert defense.kind == record.kind == "classifier" and not defense.restores
        assert defense.protect(classifier) is defense.model
        with pytest.raises(TypeError, match="does not restore"):
            defense.restore(x)
    result = evaluate("synthetic", "fgsm", defenses=f"none,{headed}", limit=32, workspace=ws, sanity_checks=False)
    rows = {(r["defense"], r["label"]): r["error"] for r in result["rows"]}
    assert rows[("robust", "clean")] == pytest.approx(100.0 * np.mean(y != 0), abs=1e-6)
    assert [d["kind"] for d in result["defenses"]] == ["preprocessor", "classifier"]


@pytest.mark.filterwarnings("ignore:Duplicate name")
def test_damaged_header_and_wrong_shape_are_one_line(trained, tmp_path):
    ws, records = trained
    pre = next(r for r in records.values() if r.kind == "preprocessor")
    broken = tmp_path / "broken.keras"
    broken.write_bytes(open(pre.defense_path, "rb").read())
    with zipfile.ZipFile(broken, "a") as archive:
        archive.writestr("arnkit.json", json.dumps({"kind": "oracle"}))  # a second, wrong header wins on read
    with pytest.raises(ArnkitError, match="damaged defense header"):
        registry.load_file(broken)
    inputs = keras.Input(shape=(5, 5, 1))
    odd = keras.Model(inputs, keras.layers.Flatten()(inputs))
    path = save_defense_file(odd, tmp_path / "odd.keras", key="x", kind="classifier", dataset="synthetic")
    with pytest.raises(ArnkitError, match=r"takes images of shape \(5, 5, 1\)"):
        registry.load_file(path, "synthetic")
