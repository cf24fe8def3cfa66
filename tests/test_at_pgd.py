"""AT_PGD (Madry et al. 2018) as a registry recipe: robust fine-tuning that resumes exactly, and bad input."""

import numpy as np
import pytest

from arnkit.defenses import registry
from arnkit.defenses.at_pgd import train_at_pgd
from arnkit.errors import ArnkitError
from arnkit.io import load_model

FAST = {"dataset": "synthetic", "attack_steps": 2, "train_limit": 96, "eval_limit": 16}


def test_interrupted_run_resumes_to_the_same_weights(tmp_path, monkeypatch):
    whole = train_at_pgd(epochs=2, workspace=tmp_path / "a", **FAST)
    # Stop the second run right after its first epoch's checkpoint, then resume it.
    import arnkit.defenses.classifier_training as at_pgd

    real_save = at_pgd._save

    def save_then_stop(model, path, epoch):
        real_save(model, path, epoch)
        raise KeyboardInterrupt

    monkeypatch.setattr(at_pgd, "_save", save_then_stop)
    with pytest.raises(KeyboardInterrupt):
        train_at_pgd(epochs=2, workspace=tmp_path / "b", **FAST)
    monkeypatch.setattr(at_pgd, "_save", real_save)
    resumed = train_at_pgd(epochs=2, workspace=tmp_path / "b", **FAST)
    assert resumed["resumed_from_epoch"] == 1 and whole["resumed_from_epoch"] == 0
    a, b = load_model(whole["defense_path"]), load_model(resumed["defense_path"])
    for wa, wb in zip(a.get_weights(), b.get_weights(), strict=True):
        np.testing.assert_allclose(wa, wb, rtol=1e-5, atol=1e-6)
    # Its report: the target alone and the robust classifier, each attacked directly.
    assert set(whole["evaluation"]) == {"clean", "pgd_n"}
    assert set(whole["evaluation"]["pgd_n"]) == {"none", "at_pgd"}
    again = train_at_pgd(epochs=2, workspace=tmp_path / "a", **FAST)
    assert again["reused"] is True


def test_bad_settings_are_one_line_before_work(tmp_path):
    with pytest.raises(ArnkitError, match="eps must be in"):
        train_at_pgd("synthetic", eps=3.0, workspace=tmp_path)
    with pytest.raises(ArnkitError, match="epochs >= 1"):
        registry.get("at_pgd").train("synthetic", workspace=tmp_path, epochs=0)
    assert not (tmp_path / "defenses").exists()
