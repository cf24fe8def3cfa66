"""`arnkit evaluate` / `arnkit report`: error-rate arithmetic, threat models, sanity flags, tables, bad input."""

import csv
import json

import keras
import numpy as np
import pytest
import tensorflow as tf
from typer.testing import CliRunner

from arnkit import data
from arnkit.defenses.base import Defense, no_defense
from arnkit.errors import ArnkitError
from arnkit.evaluation import metrics, sanity
from arnkit.evaluation.threat_models import attacked_model, parse_threat_model
from arnkit.pipeline.evaluate import ResolvedDefense, attack_specs, evaluate, iteration_plan, run_evaluation
from arnkit.pipeline.train import train_defense
from arnkit.workspace import Workspace
from arnkit_cli.main import app

FAST_TRAIN = {"dataset": "synthetic", "seen": "fgsm,pgd_n", "width": "tiny", "pool_size": 128, "batch_size": 32,
              "eval_limit": 32, "checkpoint_every": 8, "steps": 8}


class MaskedIdentity(keras.layers.Layer):
    """A planted gradient-masking 'defense': the identity forward, a zero gradient backward."""

    def call(self, x):
        return tf.stop_gradient(x)


class NumpyMedian(keras.layers.Layer):
    """A non-differentiable pre-processor (runs in numpy): 3x3 median filter."""

    def call(self, x):
        def median(a):
            padded = np.pad(a, ((0, 0), (1, 1), (1, 1), (0, 0)), mode="edge")
            stack = [padded[:, i:i + a.shape[1], j:j + a.shape[2]] for i in range(3) for j in range(3)]
            return np.median(np.stack(stack), axis=0).astype(np.float32)

        return tf.numpy_function(median, [x], tf.float32)


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    """A workspace with the synthetic target and one tiny ARN (seen fgsm, pgd_n)."""
    root = tmp_path_factory.mktemp("evaluate")
    train_defense(workspace=root, **FAST_TRAIN)
    return root


# --------------------------------------------------------------------------------------- arithmetic ---

def test_error_rate_arithmetic():
    labels = np.array([0, 1, 2, 3])
    logits = np.eye(4)[[0, 1, 0, 0]]
    wrong = metrics.misclassified(logits, labels)
    assert wrong.tolist() == [False, False, True, True]
    assert metrics.error_rate(wrong) == 50.0 and metrics.accuracy(wrong) == 0.5
    assert metrics.error_rate(np.zeros(0, bool)) == 0.0
    worst = metrics.worst_case({"a": np.array([1, 0, 0, 0], bool), "b": np.array([0, 0, 1, 0], bool)})
    assert worst.tolist() == [True, False, True, False]
    with pytest.raises(ArnkitError, match="predictions for"):
        metrics.misclassified(np.array([0, 1]), labels)
    with pytest.raises(ArnkitError, match="same images"):
        metrics.worst_case({"a": np.zeros(3, bool), "b": np.zeros(4, bool)})


def test_attack_specs_and_iteration_plan():
    mnist = data.info("mnist")
    specs = attack_specs("pgd_n,aa_n@0.4", mnist)
    assert [s.label for s in specs] == ["pgd_n", "aa_n@0.4"] and specs[1].params == {"eps": 0.4}
    labels = [s.label for s in attack_specs("all", mnist)]
    assert "pgd_n@0.4" in labels and "aa_n@0.4" in labels and "sta_t" in labels and "fwa_n" in labels
    assert iteration_plan(specs[0], mnist, parse_threat_model("bpda"), None) == [40, 100]
    assert iteration_plan(specs[0], mnist, parse_threat_model("gray"), 7) == [7]
    with pytest.raises(ArnkitError, match="no iteration count"):
        iteration_plan(attack_specs("jsma_t", mnist)[0], mnist, parse_threat_model("gray"), 10)
    with pytest.raises(ArnkitError, match="has no eps"):
        attack_specs("jsma_t@0.4", mnist)
    with pytest.raises(ArnkitError, match="unknown attack"):
        attack_specs("nope", mnist)
    with pytest.raises(ArnkitError, match="unknown threat model 'black'.*gray, white, bpda, transfer"):
        parse_threat_model("black")


# ------------------------------------------------------------------------------------ threat models ---

def test_threat_model_is_parsed_once_into_an_object_that_knows_its_properties(tiny_classifier):
    from arnkit.evaluation.threat_models import BPDA, GRAY, TRANSFER, WHITE, ThreatModel

    assert ThreatModel.parse(" White ") is WHITE and ThreatModel.parse(WHITE) is WHITE  # parsed once, then passed
    assert [str(t) for t in (GRAY, WHITE, BPDA, TRANSFER)] == ["gray", "white", "bpda", "transfer"]
    with pytest.raises(ArnkitError, match="unknown threat model 'black'") as refused:
        ThreatModel.parse("black")
    assert "\n" not in str(refused.value)
    assert GRAY.shares_gray_examples and not any(t.shares_gray_examples for t in (WHITE, BPDA, TRANSFER))
    assert TRANSFER.needs_surrogate and not any(t.needs_surrogate for t in (GRAY, WHITE, BPDA))
    assert WHITE.runs_sanity_suite and BPDA.runs_sanity_suite
    assert not GRAY.runs_sanity_suite and not TRANSFER.runs_sanity_suite
    assert BPDA.default_iterations == (40, 100) and not WHITE.default_iterations and not GRAY.default_iterations
    assert WHITE.ordering_against == (BPDA, GRAY) and not BPDA.ordering_against and not GRAY.ordering_against
    # The attacked model: what each one differentiates, and the tag that keys its examples.
    blur = keras.Sequential([keras.Input((28, 28, 1)), keras.layers.AveragePooling2D(3, 1, padding="same")])
    defense, tags = Defense("blur", "preprocessor", blur), {"classifier_tag": "t", "defense_tag": "d"}
    assert GRAY.attacked_model(defense, tiny_classifier, **tags).model is tiny_classifier
    assert WHITE.attacked_model(defense, tiny_classifier, **tags).tag == "t+d:white"
    assert BPDA.attacked_model(defense, tiny_classifier, **tags).tag == "t+d:bpda"
    with pytest.raises(ArnkitError, match="needs a surrogate"):
        TRANSFER.attacked_model(defense, tiny_classifier, **tags)
    transfer = TRANSFER.attacked_model(defense, tiny_classifier, surrogate=blur, surrogate_tag="s", **tags)
    assert transfer.tag == "t+s:transfer" and not transfer.shared_with_gray
    # NONE hides nothing (but the transfer attacker keeps their surrogate); a robust classifier is attacked itself.
    for threat in (WHITE, BPDA):
        none = threat.attacked_model(no_defense(), tiny_classifier, classifier_tag="t", defense_tag="none")
        assert none.model is tiny_classifier and none.shared_with_gray
    assert TRANSFER.attacked_model(no_defense(), tiny_classifier, surrogate=blur, surrogate_tag="s",
                                   classifier_tag="t").tag == "t+s:transfer"
    robust = Defense("robust", "classifier", tiny_classifier)
    assert {t.attacked_model(robust, tiny_classifier, classifier_tag="t", defense_tag="r").tag
            for t in (GRAY, WHITE, BPDA, TRANSFER)} == {"r"}


def test_white_box_error_at_least_gray_box(tiny_classifier, synthetic_data):
    from arnkit import attacks

    _, _, x, y, _ = synthetic_data
    x, y = x[:64], y[:64]
    blur = keras.Sequential([keras.Input((28, 28, 1)), keras.layers.AveragePooling2D(3, 1, padding="same")])
    defense = Defense("blur", "preprocessor", blur)
    attack = attacks.make("pgd_n", dataset="synthetic", eps=0.3, steps=40, step_size=0.02)
    gray = attacked_model("gray", defense, tiny_classifier, classifier_tag="t", defense_tag="d")
    white = attacked_model("white", defense, tiny_classifier, classifier_tag="t", defense_tag="d")
    assert gray.shared_with_gray and not white.shared_with_gray and white.tag != gray.tag
    errors = {}
    for name, am in (("gray", gray), ("white", white)):
        x_adv = attack(am.model, x, y, seed=0).x_adv
        pred = np.argmax(np.asarray(tiny_classifier(blur(x_adv))), -1)
        errors[name] = metrics.error_rate(metrics.misclassified(pred, y))
    assert errors["white"] >= errors["gray"]
    assert errors["white"] > 50.0


def test_bpda_runs_through_a_non_differentiable_preprocessor(tiny_classifier, synthetic_data):
    from arnkit import attacks

    _, _, x, y, _ = synthetic_data
    x, y = x[:48], y[:48]
    defense = Defense("median", "preprocessor", NumpyMedian())
    bpda = attacked_model("bpda", defense, tiny_classifier, classifier_tag="t", defense_tag="m")
    grads = sanity.input_gradients(bpda.model, x, y)
    assert np.all(np.isfinite(grads)) and np.abs(grads).sum() > 0  # identity gradient flows
    white = attacked_model("white", defense, tiny_classifier, classifier_tag="t", defense_tag="m")
    assert sanity.gradient_check(white.model, x, y).passed is False  # numpy_function: no gradient
    x_adv = attacks.make("pgd_n", dataset="synthetic", eps=0.3, steps=40, step_size=0.02)(bpda.model, x, y, seed=0).x_adv
    pred = np.argmax(np.asarray(tiny_classifier(NumpyMedian()(x_adv))), -1)
    assert metrics.error_rate(metrics.misclassified(pred, y)) > 50.0


def test_sanity_checks_pass_and_flag():
    assert sanity.iterations_check(10.0, 10.4, 40).passed
    assert not sanity.iterations_check(10.0, 12.0, 40).passed
    assert sanity.large_eps_check(10.0, 10, 0.5).passed and not sanity.large_eps_check(40.0, 10, 0.5).passed
    assert sanity.ordering_check(50.0, {"bpda": 40.0, "gray": 10.0}).passed
    assert not sanity.ordering_check(30.0, {"bpda": 40.0}).passed
    assert sanity.gradient_free_check(100, {"pgd_n": 90.0}, 90.0, 10, 10, 1, "spsa_n@0.3").passed
    flagged = sanity.gradient_free_check(100, {"pgd_n": 10.0, "aa_n": 12.0}, 12.0, 88, 88, 48, "spsa_n@0.3")
    assert not flagged.passed and "gradients are masked" in flagged.detail


def test_sanity_flags_trigger_on_a_planted_masking_defense(ws, monkeypatch):
    from arnkit.evaluation import checks as checks_module

    # A small SPSA budget: seconds on 64 images (early stop ends each fooled image).
    monkeypatch.setattr(checks_module, "GRADIENT_FREE_PARAMS",
                        {"nb_iter": 30, "spsa_samples": 32, "learning_rate": 0.05})
    masked = ResolvedDefense(Defense("masked", "preprocessor", MaskedIdentity()), "masked-v1")
    honest = ResolvedDefense(Defense("identity", "preprocessor", keras.layers.Identity()), "identity-v1")
    result = evaluate("synthetic", "pgd_n", defenses=[masked, honest], threat_model="white", limit=64,
                      workspace=ws)
    checks = {(c["defense"], c["name"]): c for c in result["sanity"]}  # one attack: one row per name
    for name in ("gradient", "large_eps", "ordering", "gradient_free"):
        assert checks[("masked", name)]["passed"] is False, checks[("masked", name)]
        assert checks[("identity", name)]["passed"] is True, checks[("identity", name)]
    assert result["sanity_passed"] is False
    errors = {r["defense"]: r["error"] for r in result["rows"] if r["label"] == "pgd_n"}
    assert errors["masked"] < errors["identity"]  # the masked gradient fools the white-box attack
    masked_free = checks[("masked", "gradient_free")]
    assert masked_free["detail"].startswith("a gradient-free attack beats the gradient attacks: gradients are masked")
    assert 100.0 * masked_free["value"]["fooled"] / masked_free["value"]["n"] > 2.0


# ------------------------------------------------------------------------------------ the pipeline ---

def test_gray_box_evaluation_writes_tables_and_grid(ws):
    result = evaluate("synthetic", "fgsm,pgd_n", defenses="none,arn", limit=64, workspace=ws)
    rows = {(r["defense"], r["label"]): r for r in result["rows"]}
    assert set(rows) == {(d, c) for d in ("none", "arn") for c in ("clean", "fgsm", "pgd_n", "worst case")}
    assert rows[("none", "pgd_n")]["error"] > 90.0 and rows[("arn", "pgd_n")]["seen"] is True
    assert rows[("none", "pgd_n")]["seen"] is False
    for d in ("none", "arn"):
        assert rows[(d, "worst case")]["error"] >= max(rows[(d, "fgsm")]["error"], rows[(d, "pgd_n")]["error"])
    files = result["files"]
    with open(files["csv"]) as handle:
        table = list(csv.DictReader(handle))
    assert len(table) == 8 and {"defense", "attack", "error", "n"} <= set(table[0])
    stored = json.loads(open(files["json"]).read())  # paths relative to the workspace, located back on read
    assert Workspace.resolve(ws).located_paths(stored)["rows"] == result["rows"]
    assert not any(str(r.get("adversarial_path", "")).startswith("/") for r in stored["rows"])
    assert "| arn |" in open(files["markdown"]).read()
    assert open(result["grid_png"], "rb").read(8) == b"\x89PNG\r\n\x1a\n"
    assert result["target"]["fingerprint"] and result["defenses"][1]["seen"] == ["fgsm", "pgd_n"]


def test_evaluate_cli_json_schema_and_report(ws):
    runner = CliRunner()
    out = runner.invoke(app, ["evaluate", "--dataset", "synthetic", "--attack", "fgsm", "--limit", "32",
                              "--threat-model", "bpda", "--no-sanity", "--workspace", str(ws), "--json"])
    assert out.exit_code == 0, out.output
    result = json.loads(out.stdout)
    assert {"rows", "defenses", "files", "sanity", "threat_model", "target", "n", "seed", "arnkit_version"} <= set(result)
    assert result["threat_model"] == "bpda" and result["n"] == 32 and result["sanity"] == []
    for row in result["rows"]:
        assert {"defense", "label", "error", "n", "seen", "threat_model"} <= set(row)
        assert 0.0 <= row["error"] <= 100.0
    out = runner.invoke(app, ["report", "--workspace", str(ws), "--json"])
    assert out.exit_code == 0, out.output
    report = json.loads(out.stdout)
    text = open(report["markdown"]).read()
    assert "## Evaluations" in text and "bpda" in text and "<table>" in open(report["html"]).read()


def test_transfer_crafts_through_a_surrogate(ws, tmp_path):
    from arnkit.defenses.arn import save_defense

    surrogate = keras.Sequential([keras.Input((28, 28, 1)), keras.layers.AveragePooling2D(3, 1, padding="same")])
    path = tmp_path / "surrogate.keras"
    save_defense(surrogate, path)
    result = evaluate("synthetic", "fgsm", defenses="none,arn", threat_model="transfer", surrogate=str(path),
                      limit=32, workspace=ws)
    assert result["surrogate"]["fingerprint"] and len([r for r in result["rows"] if r["label"] == "fgsm"]) == 2


def test_ablation_and_matrix_studies(ws):
    from arnkit.evaluation.studies import evaluate_ablation, evaluate_matrix

    result = evaluate_ablation("synthetic", "fgsm", limit=32, train_steps=4, workspace=ws)
    assert set(result["accuracy"]) == {"ARN", "w/o L_adv", "w/o L_nor", "w/o L_att"}
    ablated = {v["name"]: v for v in result["variants"].values()}
    assert len({v["fingerprint"] for v in ablated.values()}) == 4
    assert open(result["ablation_png"], "rb").read(4) == b"\x89PNG"
    matrix = evaluate_matrix("synthetic", "fgsm,pgd_n;pgd_t,pgd_n", "fgsm,pgd_n", limit=32, train_steps=4, workspace=ws)
    assert np.asarray(matrix["matrix"]).shape == (2, 3)  # two seen sets x (fgsm, pgd_n, worst case)
    assert matrix["matrix_columns"] == ["fgsm", "pgd_n", "worst case"]
    assert open(matrix["matrix_png"], "rb").read(4) == b"\x89PNG"


# ------------------------------------------------------------------------------------------ bad input ---

def test_bad_input_is_one_clear_error(ws, tmp_path):
    with pytest.raises(ArnkitError, match="unknown threat model"):
        evaluate("synthetic", "fgsm", threat_model="black", workspace=ws)
    with pytest.raises(ArnkitError, match="larger than the synthetic test split"):
        evaluate("synthetic", "fgsm", limit=10_000, workspace=ws)
    with pytest.raises(ArnkitError, match="needs --surrogate"):
        evaluate("synthetic", "fgsm", threat_model="transfer", workspace=ws)
    with pytest.raises(ArnkitError, match="surrogate .* does not exist"):
        evaluate("synthetic", "fgsm", threat_model="transfer", surrogate=str(tmp_path / "nope.keras"), workspace=ws)
    with pytest.raises(ArnkitError, match="unknown defense 'apegan'"):
        evaluate("synthetic", "fgsm", defenses="none,apegan", workspace=ws)
    with pytest.raises(ArnkitError, match="separate studies"):
        run_evaluation("synthetic", "fgsm", ablation=True, matrix="fgsm", workspace=ws)
    # a defense trained for another dataset
    record = json.loads(next((ws / "defenses").glob("synthetic-arn-*.d/record.json")).read_text())
    foreign = tmp_path / "lisa-run"
    foreign.mkdir()
    (foreign / "arn.keras").write_bytes((ws / record["defense_path"]).read_bytes())  # stored relative to ws
    (foreign / "record.json").write_text(json.dumps({**record, "dataset": "lisa",
                                                     "defense_path": str(foreign / "arn.keras")}))
    with pytest.raises(ArnkitError, match="trained for lisa, not synthetic"):
        evaluate("synthetic", "fgsm", defenses=str(foreign / "arn.keras"), workspace=ws)
    out = CliRunner().invoke(app, ["evaluate", "--dataset", "synthetic", "--threat-model", "black",
                                   "--workspace", str(ws)])
    assert out.exit_code == 1 and "unknown threat model" in out.output and len(out.output.strip().splitlines()) == 1


def test_no_defense_is_the_identity(synthetic_data, tiny_classifier):
    from arnkit.pipeline.evaluate import defended_predictions

    _, _, x, y, _ = synthetic_data
    pred, restored = defended_predictions(no_defense(), tiny_classifier, x[:16])
    np.testing.assert_array_equal(pred, np.argmax(np.asarray(tiny_classifier(x[:16])), -1))
    np.testing.assert_allclose(restored, x[:16])


def test_cross_model_puts_the_defense_in_front_of_another_target(ws):
    result = evaluate("synthetic", "fgsm", defenses="none,arn", target_model="lisa_cnn", limit=32, workspace=ws)
    assert result["cross_model"] is True and result["target"]["model"] == "lisa_cnn"
    arn = next(d for d in result["defenses"] if d["name"] == "arn")
    assert arn["seen"] == ["fgsm", "pgd_n"]  # the defense trained against the default target (lenet)
    rows = {(r["defense"], r["label"]): r["error"] for r in result["rows"]}
    assert rows[("none", "clean")] < 20.0


def test_two_exported_files_with_the_same_name_get_distinct_labels(ws, tmp_path):
    import shutil

    from arnkit.defenses import find_defenses

    record = find_defenses(Workspace(ws), "synthetic", "arn")[0]
    for run in ("run-a", "run-b"):
        (tmp_path / run).mkdir()
        shutil.copy(record.defense_path, tmp_path / run / "arn.keras")
    paths = [str(tmp_path / run / "arn.keras") for run in ("run-a", "run-b")]
    result = evaluate("synthetic", "fgsm", defenses=",".join(["none", *paths]), limit=16, workspace=ws)
    assert [d["name"] for d in result["defenses"]] == ["none", "run-a/arn", "run-b/arn"]
    with pytest.raises(ArnkitError, match="names a defense twice"):
        evaluate("synthetic", "fgsm", defenses=f"{paths[0]},{paths[0]}", limit=16, workspace=ws)


# -------------------------------------------------------------------------------------------- restarts ---

def test_restarts_keep_the_per_image_best_and_key_the_cache(ws):
    # A weak PGD (2 small steps from a random start at eps .15) so one run leaves images a restart can break.
    common = dict(defenses="none", limit=64, iterations=2, workspace=ws)
    once = evaluate("synthetic", "pgd_n@0.15", **common)
    thrice = evaluate("synthetic", "pgd_n@0.15", restarts=3, **common)
    row1, row3 = ([r for r in res["rows"] if r["attack"] == "pgd_n"][0] for res in (once, thrice))
    assert row1["restarts"] == 1 and row3["restarts"] == 3 and thrice["restarts"] == 3
    assert row1["adversarial_path"] != row3["adversarial_path"]  # a restarts=1 set is not reused
    assert row1["error"] < 100.0, "the weak attack already breaks everything: the test cannot tell restarts apart"
    assert row3["error"] >= row1["error"]
    from arnkit import adversarial_store

    a1, a3 = (adversarial_store.load(r["adversarial_path"]) for r in (row1, row3))
    assert a3.attrs["restarts"] == 3 and np.all(a3.success[a1.success])  # first run's successes are kept


def test_restarts_below_one_are_refused(ws):
    for bad in (0, -2):
        with pytest.raises(ArnkitError, match="--restarts must be >= 1"):
            evaluate("synthetic", "fgsm", defenses="none", restarts=bad, workspace=ws)
    out = CliRunner().invoke(app, ["evaluate", "--dataset", "synthetic", "--defense", "none", "--restarts", "0",
                                   "--workspace", str(ws)])
    assert out.exit_code == 1 and "--restarts must be >= 1" in out.output
    assert len(out.output.strip().splitlines()) == 1


# ------------------------------------------------------------------------------------- convergence ---

def test_convergence_curves_are_written_and_match_the_record(ws):
    honest = ResolvedDefense(Defense("identity", "preprocessor", keras.layers.Identity()), "identity-v1")
    # 10 PGD steps of .01 from a random start: far from converged on this target (the walk is short of the
    # squares' margin), so the curve must climb and the number must come out as a lower bound.
    result = evaluate("synthetic", "pgd_n", defenses=[honest], threat_model="white", limit=48, iterations=10,
                      convergence_curves=True, max_iterations=80, sanity_checks=False, workspace=ws)
    curves = result["convergence"]
    for kind in ("iterations", "eps"):
        assert open(curves[f"{kind}_png"], "rb").read(8) == b"\x89PNG\r\n\x1a\n"
        with open(curves[f"{kind}_csv"]) as handle:
            table = [(r["defense"], float(r[kind]), float(r["error"])) for r in csv.DictReader(handle)]
        curve = curves[kind]["identity"]
        assert table == [("identity", x, e) for x, e in curve["points"]]  # CSV = JSON = the drawn line
        assert curve["plotted"] == curve["points"]
    it = curves["iterations"]["identity"]
    assert [p[0] for p in it["points"]][:2] == [10, 20] and it["points"][-1][0] <= 80
    eps = curves["eps"]["identity"]
    errors = [e for _, e in eps["points"]]
    assert eps["points"][0][0] == 0.0 and errors == sorted(errors) and eps["monotone"] is True
    assert errors[-1] > errors[0] + 50.0  # from clean error to (nearly) all broken
    saved = json.loads(open(result["files"]["json"]).read())["convergence"]
    assert saved["eps"]["identity"]["points"] == eps["points"]
    row = next(r for r in result["rows"] if r["label"] == "pgd_n")
    assert row["lower_bound"] is (not it["converged"])
    assert row["error"] == round(it["points"][0][1], 4)  # same 48 images and set: the table's number
    assert row["lower_bound"] is True and it["converged_at"] != 10, it  # 10 steps of .01 had not converged
    assert "(lower bound)" in open(result["files"]["markdown"]).read()


def test_convergence_bad_input(ws):
    with pytest.raises(ArnkitError, match="--convergence applies to --threat-model white or bpda"):
        evaluate("synthetic", "pgd_n", defenses="none", convergence_curves=True, workspace=ws)
    with pytest.raises(ArnkitError, match="--max-iterations must be .* >= twice"):
        evaluate("synthetic", "pgd_n", defenses="none", threat_model="white", iterations=10,
                 convergence_curves=True, max_iterations=15, workspace=ws)


def test_convergence_arithmetic():
    from arnkit.evaluation import convergence

    calls = []
    curve = convergence.iteration_curve(lambda k: calls.append(k) or min(100.0, float(k)), 10, 1000)
    assert calls == [10, 20, 40, 80, 160, 320] and curve["converged_at"] == 160 and curve["converged"] is False
    flat = convergence.iteration_curve(lambda k: 50.0, 40, 1000)
    assert flat["points"] == [[40, 50.0], [80, 50.0]] and flat["converged"] is True
    capped = convergence.iteration_curve(lambda k: float(k), 40, 200)
    assert [p[0] for p in capped["points"]] == [40, 80, 160] and capped["converged_at"] is None
    grid = convergence.eps_grid(0.3, 0.5)
    assert grid[0] == 0.0 and grid[-1] == 0.5 and 0.3 in grid and grid == sorted(grid)
    rising = convergence.eps_curve(lambda e: min(100.0, 400.0 * e), grid)
    assert rising["points"][-1] == [0.25, 100.0] and rising["reached_100"] and rising["monotone"]
    assert convergence.eps_curve(lambda e: 50.0 - 10.0 * e, grid)["monotone"] is False
