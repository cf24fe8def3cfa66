"""Attack budgets are data of the dataset (arnkit.data.budgets); attacks keep no per-call state; `__call__` is
final."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from arnkit import attacks, data, presets
from arnkit.attacks.base import Attack, AttackResult, RunOutput
from arnkit.data import budgets
from arnkit.errors import ArnkitError

E = 0.05  # a budget no built-in dataset has: neither MNIST's .3 nor CIFAR-10's 8/255


def _info_with_eps(eps: float) -> data.DatasetInfo:
    """synthetic's info as a dataset that declares only `eps` (28x28x1: MNIST is its reference row)."""
    base = data.info("synthetic")
    return dataclasses.replace(base, name="eps-only", budgets=budgets.derived(eps, base.shape))


def _registry_classes() -> dict[str, type]:
    return {key: entry.attack_class() for key, entry in attacks.REGISTRY.items()}


def _all_attack_classes(*, private: bool = False) -> set[type]:
    """Every Attack subclass arnkit defines (the registry's, AutoAttack's parts, the detector check's)."""
    import arnkit.attacks.apgd  # noqa: F401
    import arnkit.attacks.fab  # noqa: F401
    import arnkit.attacks.square  # noqa: F401
    import arnkit.detection.high_confidence  # noqa: F401

    _registry_classes()
    found, stack = set(), [Attack]
    while stack:
        for sub in stack.pop().__subclasses__():
            if sub.__module__.startswith("arnkit.") and sub not in found:
                found.add(sub)
                stack.append(sub)
    return {cls for cls in found if private or not cls.__name__.startswith("_")}  # private bases: never built


# -- every attack reads the dataset's budget ---------------------------------------------------------------
@pytest.mark.parametrize("key", list(attacks.REGISTRY))
def test_every_registry_attack_uses_the_datasets_budget(key):
    info = _info_with_eps(E)
    cls = attacks.get(key).attack_class()
    attack = attacks.make(key, dataset=info)
    if cls.has_eps and cls.distance == "linf":
        assert attack.eps == pytest.approx(E) and attack.eps != 0.3
    elif cls.distance == "wasserstein":  # FWA: MNIST's .3 (the paper's budget) scaled by E / .3 (budgets.derived)
        assert attack.eps == pytest.approx(budgets.MNIST.fwa_eps * E / 0.3) and budgets.MNIST.fwa_eps == 0.3
    else:
        assert not hasattr(attack, "eps") or attack.eps != 0.3
    # the same attack made from the name of a built-in dataset reads that dataset's row
    by_info = attacks.make(key, dataset=data.info("cifar10"))
    assert attacks.make(key, dataset="cifar10").params() == by_info.params()


@pytest.mark.parametrize("cls", sorted(_all_attack_classes(), key=lambda c: c.__name__),
                         ids=lambda c: c.__name__)
def test_every_attack_class_has_a_budget_rule_and_reads_eps(cls):
    info = _info_with_eps(E)
    attack = cls.for_dataset(info)
    if cls.has_eps and cls.distance == "linf":
        assert attack.eps == pytest.approx(E)
    assert attack.params()  # it builds from the rule


def test_step_sizes_and_patch_follow_the_derivation_rule():
    info = _info_with_eps(E)
    pgd = attacks.make("pgd_n", dataset=info)
    assert pgd.step_size == pytest.approx(0.01 * E / 0.3)
    roa = attacks.make("roa", dataset=info)
    assert (roa.width, roa.height, roa.stride) == (6, 6, 2)
    big = dataclasses.replace(info, shape=(64, 64, 3), budgets=budgets.derived(E, (64, 64, 3)))
    roa64 = attacks.make("roa", dataset=big)
    assert (roa64.width, roa64.height) == (14, 14)  # 7/32 of the side, as DOA's 7x7 on 32x32
    fwa = attacks.make("fwa_n", dataset=big)  # colour: CIFAR-10's .005 with capacity, scaled by E / (8/255)
    assert fwa.capacity and fwa.eps == pytest.approx(0.005 * E / (8 / 255))


def test_derivation_reproduces_the_reference_rows():
    assert budgets.derived(0.3, (28, 28, 1)) == budgets.MNIST
    assert budgets.derived(8 / 255, (32, 32, 3)) == budgets.CIFAR10
    assert data.info("lisa").budgets == budgets.LISA and data.info("synthetic").budgets == budgets.MNIST
    with pytest.raises(ArnkitError, match="eps"):
        budgets.derived(0.0, (28, 28, 1))


def test_builtin_rows_keep_the_paper_numbers():
    assert (data.info("mnist").eps, data.info("mnist").eps_raised) == (0.3, 0.4)
    assert data.info("cifar10").eps == pytest.approx(8 / 255) and data.info("lisa").eps_raised == 0.05
    assert attacks.make("rp2", dataset="lisa").steps == 500
    assert attacks.make("rp2", dataset="cifar10").steps == 200
    assert attacks.make("cw_n", dataset="mnist").steps == 60
    assert attacks.make("cw_n", dataset="lisa").steps == 100
    assert attacks.make("fwa_n", dataset="lisa").capacity
    assert not attacks.make("fwa_n", dataset="mnist").capacity
    from arnkit.detection.high_confidence import HighConfidencePGD

    assert HighConfidencePGD.for_dataset("cifar10").step_size == pytest.approx(1 / 255)


# -- refusals ----------------------------------------------------------------------------------------------
def test_an_unknown_dataset_is_refused_in_one_line():
    with pytest.raises(ArnkitError, match="unknown dataset 'digits'") as caught:
        attacks.make("pgd_n", dataset="digits")
    assert "\n" not in str(caught.value)
    from arnkit.attacks.pgd import PGD

    with pytest.raises(ArnkitError, match="unknown dataset"):
        PGD.for_dataset("digits")


@pytest.mark.parametrize("key", ["pgd_n", "fwa_n", "roa", "ap1"])
def test_a_dataset_without_budgets_is_refused_in_one_line(key):
    bare = dataclasses.replace(data.info("synthetic"), name="bare", budgets=None)
    assert bare.eps is None
    with pytest.raises(ArnkitError, match="declares no attack budgets") as caught:
        attacks.make(key, dataset=bare)
    assert "\n" not in str(caught.value)


def test_an_attack_class_without_a_rule_is_refused():
    class Custom(Attack):  # a library user's attack, not a subclass of one with a rule
        def run(self, model, x, y, target, *, seed, batch):
            return x

    with pytest.raises(ArnkitError, match="no budget rule for attack class 'Custom'"):
        Custom.for_dataset("mnist")


def test_a_subclass_reads_its_base_classes_rule():
    from arnkit.attacks.pgd import PGD

    class MyPGD(PGD):
        pass

    assert MyPGD.for_dataset("cifar10").eps == pytest.approx(8 / 255)


def test_make_without_a_dataset_keeps_the_constructor_defaults():
    assert attacks.make("pgd_n").eps == 0.3  # the constructor's, for callers that pass their own
    assert attacks.make("pgd_n", eps=0.1).eps == 0.1


def test_unknown_preset_is_refused():
    assert presets.get("LISA").dataset == "lisa"
    with pytest.raises(ArnkitError, match="no preset for dataset 'digits'"):
        presets.get("digits")
    assert not hasattr(presets, "FALLBACK")


# -- no per-dataset dict in any attack class ---------------------------------------------------------------
def test_no_attack_class_holds_a_per_dataset_dict():
    for cls in {Attack, *_all_attack_classes(private=True)}:
        assert not hasattr(cls, "dataset_defaults"), cls.__name__
        for name, value in vars(cls).items():
            if isinstance(value, dict):
                assert not set(value) & set(data.SOURCES), f"{cls.__name__}.{name} is keyed by dataset"


def test_list_attacks_defaults_come_from_the_budgets():
    from arnkit.pipeline.attack import list_attacks

    rows = {r["key"]: r for r in list_attacks()}
    assert rows["pgd_n"]["defaults"]["cifar10"] == {"eps": 8 / 255, "steps": 40, "step_size": 0.01,
                                                      "random_start": True, "targeted": False}
    assert rows["fwa_n"]["defaults"]["mnist"] == {"eps": 0.3, "targeted": False}  # the paper's budget
    assert rows["roa"]["defaults"]["mnist"] == {"width": 6, "height": 6, "stride": 2}
    assert rows["ap1"]["defaults"]["lisa"] == {**budgets.DOA_STICKER, "mask": "ap1"}


# -- __call__ is final ---------------------------------------------------------------------------------------
def test_call_cannot_be_overridden():
    with pytest.raises(TypeError, match="final"):
        class Sneaky(Attack):  # noqa: F841
            def __call__(self, model, x, y, **kwargs):
                return None

    from arnkit.attacks.pgd import PGD

    with pytest.raises(TypeError, match="final"):
        class SneakyPGD(PGD):  # noqa: F841
            def __call__(self, model, x, y, **kwargs):
                return None


# -- no per-call state on the instance --------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny():
    import keras

    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Conv2D(4, 3, activation="relu"),
                              keras.layers.Flatten(), keras.layers.Dense(4)])
    rng = np.random.default_rng(0)
    x = rng.uniform(0.0, 1.0, (6, 8, 8, 1)).astype(np.float32)
    y = np.argmax(model.predict(x, verbose=0), -1)
    return model, x, y


def _state(attack: Attack) -> dict:
    """The instance's attributes (AutoAttack's components too), the graph memo aside."""
    out = {k: v for k, v in vars(attack).items() if k != "_compiled"}
    for name, part in vars(attack).get("_components", {}).items():
        out.update({f"{name}.{k}": v for k, v in vars(part).items() if k != "_compiled"})
    return out


def _same(before: dict, after: dict) -> bool:
    if set(before) != set(after):
        return False
    for key, value in before.items():
        if isinstance(value, np.ndarray):
            if not np.array_equal(value, after[key]):
                return False
        elif value is not after[key] and value != after[key]:
            return False
    return True


def _attacks_with_measurements():
    from arnkit.attacks.autoattack import AutoAttack
    from arnkit.attacks.fwa import FWA
    from arnkit.attacks.stadv import STA

    return [
        ("fwa", lambda: FWA(eps=0.3, steps=3, kernel_size=3), ("wasserstein", "transport_cost")),
        ("sta", lambda: STA(steps=2, search_steps=1), ("flow",)),
        ("aa", lambda: AutoAttack(eps=0.1, apgd_iter=2, fab_iter=2, square_queries=5, n_target_classes=2),
         ("report",)),
    ]


@pytest.mark.parametrize("name,build,keys", _attacks_with_measurements(),
                         ids=lambda v: v if isinstance(v, str) else "")
def test_a_call_leaves_no_new_state_and_returns_its_measurements(tiny, name, build, keys):
    model, x, y = tiny
    attack = build()
    before = dict(_state(attack))
    keys_before = set(vars(attack))
    result = attack(model, x, y, seed=0)
    assert set(vars(attack)) == keys_before, "a call added attributes"
    assert _same(before, _state(attack)), "a call changed the instance"
    assert isinstance(result, AttackResult) and set(keys) <= set(result.extras)
    if name == "aa":
        report = result.extras["report"]
        assert report["clean"]["attacked"] == len(x)
        assert report["clean"]["fooled"] + sum(report[c]["fooled"] for c in report if c != "clean") \
            == int(result.success.sum())
    else:
        for key in keys:
            assert result.extras[key].shape == (len(x),)
    memo = attack._compiled  # a memo of (model, parameters, graph) at most: no call's results
    assert memo is None or (memo[0] is model and len(memo) == 3)


def test_a_call_does_not_depend_on_an_earlier_one(tiny):
    from arnkit.attacks.fwa import FWA

    model, x, y = tiny
    used = FWA(eps=0.3, steps=3, kernel_size=3, early_stop=False)
    used(model, x[:3], y[:3], seed=1)
    used.eps = 0.05  # a changed parameter must not reuse the graph traced with eps .3
    again = used(model, x[3:], y[3:], seed=0)
    fresh = FWA(eps=0.05, steps=3, kernel_size=3, early_stop=False)(model, x[3:], y[3:], seed=0)
    np.testing.assert_array_equal(again.x_adv, fresh.x_adv)
    np.testing.assert_array_equal(again.extras["transport_cost"], fresh.extras["transport_cost"])


def test_run_output_reaches_the_result(tiny):
    class Measuring(Attack):
        has_eps = False

        def run(self, model, x, y, target, *, seed, batch):
            return RunOutput(x, {"batch": np.full(int(x.shape[0]), batch)})

    model, x, y = tiny
    result = Measuring(batch_size=4)(model, x, y)
    np.testing.assert_array_equal(result.extras["batch"], [0, 0, 0, 0, 1, 1])
    np.testing.assert_array_equal(result.x_adv, x)
