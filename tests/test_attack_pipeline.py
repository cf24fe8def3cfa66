"""`arnkit attack`: HDF5 cache with provenance, reuse, shards and merge, bad input."""

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from arnkit import adversarial_store
from arnkit.errors import ArnkitError
from arnkit.pipeline.attack import craft, list_attacks, merge_shards
from arnkit_cli.main import app


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    return tmp_path_factory.mktemp("ws")


def test_craft_stores_provenance_and_reuses(ws):
    first = craft("synthetic", "fgsm", limit=64, workspace=ws)
    assert first["reused"] is False and first["n"] == 64
    assert first["linf_max"] <= 0.3 + 1e-6 and 0.0 <= first["success_rate"] <= 1.0
    adv = adversarial_store.load(first["path"])
    for key in ("attack", "params", "dataset", "split", "target_fingerprint", "seed", "arnkit_version"):
        assert key in adv.attrs
    assert adv.attrs["attack"] == "fgsm" and adv.attrs["params"]["eps"] == pytest.approx(0.3)
    np.testing.assert_array_equal(adv.indices, np.arange(64))
    second = craft("synthetic", "fgsm", limit=64, workspace=ws)
    assert second["reused"] is True and second["path"] == first["path"]
    assert second["success_rate"] == first["success_rate"]
    other = craft("synthetic", "fgsm", limit=64, eps=0.1, workspace=ws)
    assert other["path"] != first["path"] and other["linf_max"] <= 0.1 + 1e-6


def test_shards_merge_to_the_full_selection(ws):
    for i in range(3):
        part = craft("synthetic", "fgsm", limit=50, shard=f"{i}/3", workspace=ws)
        assert part["n"] in (16, 17)
    merged = merge_shards("synthetic", "fgsm", shards=3, limit=50, workspace=ws)
    assert merged["n"] == 50
    adv = adversarial_store.load(merged["path"])
    np.testing.assert_array_equal(adv.indices, np.arange(50))
    # FGSM is deterministic: merged shards equal an unsharded run.
    whole = adversarial_store.load(craft("synthetic", "fgsm", limit=50, workspace=ws)["path"])
    np.testing.assert_allclose(adv.x_adv, whole.x_adv, atol=1e-6)


def test_missing_shard_and_bad_shard_spec(ws):
    with pytest.raises(ArnkitError, match="shard 1/2 is missing"):
        craft("synthetic", "fgsm", limit=20, shard="0/2", workspace=ws)
        merge_shards("synthetic", "fgsm", shards=2, limit=20, workspace=ws)
    with pytest.raises(ArnkitError, match="i/n"):
        craft("synthetic", "fgsm", limit=20, shard="half", workspace=ws)


def test_store_refuses_other_dataset_or_model(ws):
    path = craft("synthetic", "fgsm", limit=16, workspace=ws)["path"]
    with pytest.raises(ArnkitError, match="crafted on dataset 'synthetic', not 'mnist'"):
        adversarial_store.load(path, dataset="mnist")
    with pytest.raises(ArnkitError, match="re-craft"):
        adversarial_store.load(path, target_fingerprint="0" * 16)
    bad = ws / "bad.h5"
    bad.write_bytes(b"not hdf5")
    with pytest.raises(ArnkitError, match="not a valid"):
        adversarial_store.load(bad)


def test_unknown_attack_lists_known_ones(ws):
    with pytest.raises(ArnkitError, match="unknown attack 'foo'; known attacks: fgsm, pgd_n"):
        craft("synthetic", "foo", workspace=ws)


def test_limit_larger_than_split(ws):
    with pytest.raises(ArnkitError, match="larger than the split"):
        craft("synthetic", "fgsm", limit=10_000, workspace=ws)


def test_cli_attack_json_and_attacks_listing(ws):
    runner = CliRunner()
    result = runner.invoke(app, ["attack", "--dataset", "synthetic", "--attack", "fgsm", "--limit", "32",
                                 "--workspace", str(ws), "--json"])
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout)
    for key in ("success_rate", "undefended_error", "linf_max", "l2_mean", "l0_mean", "path", "target_fingerprint"):
        assert key in record
    listing = runner.invoke(app, ["attacks", "--json"])
    rows = {row["key"]: row for row in json.loads(listing.stdout)["attacks"]}
    assert rows["pgd_t"]["targeted"] is True and rows["pgd_n"]["targeted"] is False
    assert rows["pgd_n"]["defaults"]["mnist"]["eps"] == pytest.approx(0.3)
    assert {r["key"] for r in list_attacks()} >= {"pgd_n", "cw_n", "aa_n", "sta_t", "ap1"}
    bad = runner.invoke(app, ["attack", "--attack", "nope", "--dataset", "synthetic", "--workspace", str(ws)])
    assert bad.exit_code == 1 and "unknown attack 'nope'" in bad.output and "Traceback" not in bad.output
