"""Training configuration of the ARN defense (Zhou et al., ICML 2021, Section 3.4 and 4.1).

Two objectives are offered:

- ``"paper"`` (default): Eq. 1-8 of the paper. Section 4.1 weights: MNIST lambda1 = 0.1, lambda2 = 0.01,
  theta = 0.1; CIFAR-10 and LISA lambda1 = 100, lambda2 = 10, theta = 100; the MSE weight is 1.
- ``"reference"``: what the authors' public code (dwDavidxd/ARN, MNIST only) optimises: a per-example VAE KL
  summed over the pooled batch, binary cross-entropy discriminators with "natural" as an extra attack
  class, a WGAN-GP penalty (weight 30) on the image discriminator, MSE weight 200, attack-invariance 0.5,
  normalisation 1e-6, image-adversarial 0.01. The code ships one set of weights, used for every dataset.

Example::

    cfg = ARNConfig.for_dataset("mnist")                         # paper, MNIST weights
    cfg = ARNConfig.for_dataset("cifar10", preset="reference")   # paper, CIFAR-10 weights, official widths
    cfg = ARNConfig.for_dataset("mnist", objective="reference")  # the official code's objective
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from arnkit.errors import ArnkitError
from arnkit.presets import PRESETS

OBJECTIVES = ("paper", "reference")
LR_SCHEDULES = ("constant", "cosine")
ADAPTIVE_UPDATES = ("both", "encoder", "decoder")
# Written to the config dict (so to run ids) only for adaptive runs: runs from before the option keep their ids.
ADAPTIVE_FIELDS = ("adaptive_share", "adaptive_steps", "adaptive_eps", "adaptive_step_size", "adaptive_update",
                   "adaptive_guide_weight")
# The attack families the adaptive step may draw from (families.py crafts them), and the budget field each needs
# besides adaptive_eps. Written to the config dict only when adaptive_families is set.
ADAPTIVE_FAMILIES: dict[str, str | None] = {
    "pgd_linf": None,  # L-inf PGD, untargeted (today's single family)
    "pgd_linf_targeted": None,  # L-inf PGD towards a random other class
    "pgd_l2": "adaptive_l2_eps",  # L2 PGD
    "flow": "adaptive_flow_eps",  # a smooth spatial flow (STA-like), at most this many pixels per pixel
    "patch": "adaptive_patch",  # a free patch at a random place (random shape on colour images), side in pixels
}
FAMILY_FIELDS = ("adaptive_families", "adaptive_l2_eps", "adaptive_flow_eps", "adaptive_patch")

# Section 4.1: (lambda1, lambda2, theta) per dataset, kept with the other per-dataset defaults.
PAPER_WEIGHTS: dict[str, tuple[float, float, float]] = {name: p.arn.weights for name, p in PRESETS.items()}

# dwDavidxd/ARN config/adver.yaml, mapped onto the paper's names.
REFERENCE_WEIGHTS: dict[str, Any] = {
    "lambda1": 0.5,  # attack_invariant
    "lambda2": 1e-6,  # nor
    "theta": 0.01,  # pix_adv
    "mse_weight": 200.0,  # mse_for
    "gp_weight": 30.0,  # gp
    "include_natural": True,
}


@dataclass(frozen=True)
class ARNConfig:
    """Loss weights, ablation switches and optimiser settings of one ARN training run.

    objective: "paper" (Eq. 1-8) or "reference" (the official code's losses, see the module docstring).
    preset: width preset of the four networks (`arnkit.defenses.arn.networks.PRESETS`).
    lambda1: weight of L_att in L_E (Eq. 7).  lambda2: weight of L_nor in L_E (Eq. 7).
    theta: weight of L_adv in L_G (Eq. 8).  mse_weight: weight of L_mse in both (1 in the paper).
    gp_weight: WGAN-GP penalty on the image discriminator (0 for the paper, 30 in the official code).
    use_att / use_nor / use_adv: ablation switches (Section 4.3); False drops the term from L_E / L_G.
    include_natural: also feed the natural images through E and G as one more "attack" domain
        (an identity-reconstruction term, an extra D_A class and an extra L_nor distribution).
        The paper's E sees adversarial examples only (default False); the official code feeds natural
        ones too (the reference objective sets True). Measured on MNIST (LeNet, seen PGD_N + PGD_T,
        preset "default", 1577 steps of batch 64, 500 test images): True restores clean images better
        (accuracy 96.6% vs 95.6%, squared error 4.4 vs 5.7 per image) but defends worse (PGD_N 86.0% vs
        88.4%, FGSM 72.6% vs 75.4%, PGD eps .4 71.2% vs 76.6%) and costs 1.5x per step.
    sample_latent: draw z = mu + sigma * eps while training (VAE style); mu is used at inference.
    learning_rate, beta_1, beta_2: Adam settings shared by the four players (Section 4.1: 1e-4;
        official code betas (0.5, 0.999)).
    lr_schedule: "constant" (the paper) or "cosine": the learning rate falls from `learning_rate` to 0
        along a half cosine over `lr_decay_steps` optimizer steps, then stays at 0. The rate is a function
        of each optimizer's iteration count, which checkpoints restore, so a resumed run follows the same
        schedule as an uninterrupted one.
    lr_decay_steps: length of the cosine decay in steps (required > 0 for "cosine"; usually the run's
        step count; `arnkit train` sets it so).
    guide_weight: beyond the paper, opt-in (0 = the paper). Adds guide_weight * L_guide to L_E and L_G, where
        L_guide is HGD's logit-guided loss (Liao et al., CVPR 2018): the mean absolute difference between the
        target classifier's logits on restored and on natural images (`losses.l_guide`). Training then needs
        that classifier (`ARN(..., guide=model)`); the exported pre-processor does not. Measured on MNIST
        (docs/results-mnist.md): weight 5 fixes 12 of the default ARN's 44 gray-box PGD_N failures and
        breaks none, at a small PGD_T cost; the defense is then tuned to that classifier.
    adaptive_share: beyond the paper, opt-in (0 = the paper; `arnkit train --adaptive`). The defense is leaked to
        the attacker while it trains (the paper's future work; JATP, Zhou et al. arXiv 2106.05453): for this
        share of each batch's natural images, white-box PGD crafts an example against the *current*
        pre-processor + the frozen target (`guide`), and E and G learn to restore it: L_mse to the natural image
        plus adaptive_guide_weight * L_guide, added to L_E and L_G. D_A and D_I do not see these examples.
    adaptive_steps / adaptive_eps / adaptive_step_size: that PGD: a random start in the L-inf eps-ball, then
        `adaptive_steps` signed steps (step size 0 = 2.5 * eps / steps, Madry et al.'s rule), untargeted,
        against the target's predicted label on the natural image, BatchNorm in inference mode (the deployed
        function).
    adaptive_update: which players learn from those examples: "both" (E and G), "encoder" or "decoder".
    adaptive_guide_weight: weight of L_guide on the adaptive examples; None = guide_weight.
    adaptive_families: beyond the paper, opt-in (empty = the single untargeted L-inf PGD above). Per batch one
        family is drawn, seeded and reproducible, from these names (`ADAPTIVE_FAMILIES`) and crafted against
        the current E, G and the frozen target: pgd_linf, pgd_linf_targeted, pgd_l2, flow, patch
        (families.py). adaptive_l2_eps, adaptive_flow_eps (pixels) and adaptive_patch (pixels) are their
        budgets; `arnkit train` fills them from the dataset's budgets (arnkit/data/budgets.py).
    generator: "paper" (G(E(x)), Section 3) or, beyond the paper, "residual_unet": clip(x + G(E(x)), 0, 1) with
        U-Net skips from E's feature maps into G, as HGD's denoiser (networks.py).
    ema: beyond the paper, opt-in: the momentum of an exponential moving average of E's and G's weights
        (Keras's optimizer EMA, average = ema * average + (1 - ema) * weights after every step); the exported
        restorer carries the averages. 0 (default) = off, the paper's raw final weights.
    seed: seeds the latent noise and the gradient-penalty interpolation.
    sync_batchnorm: synchronise BatchNorm statistics across replicas; None = only when the model is
        built under a multi-replica tf.distribute strategy.
    """

    objective: str = "paper"
    preset: str = "default"
    lambda1: float = 0.1
    lambda2: float = 0.01
    theta: float = 0.1
    mse_weight: float = 1.0
    gp_weight: float = 0.0
    use_att: bool = True
    use_nor: bool = True
    use_adv: bool = True
    include_natural: bool = False
    sample_latent: bool = True
    learning_rate: float = 1e-4
    beta_1: float = 0.5
    beta_2: float = 0.999
    lr_schedule: str = "constant"
    lr_decay_steps: int = 0
    guide_weight: float = 0.0
    adaptive_share: float = 0.0
    adaptive_steps: int = 5
    adaptive_eps: float = 0.3
    adaptive_step_size: float = 0.0
    adaptive_update: str = "both"
    adaptive_guide_weight: float | None = None
    adaptive_families: tuple[str, ...] = ()
    adaptive_l2_eps: float = 0.0
    adaptive_flow_eps: float = 0.0
    adaptive_patch: int = 0
    generator: str = "paper"
    ema: float = 0.0
    seed: int = 0
    sync_batchnorm: bool | None = None

    def __post_init__(self) -> None:
        if self.objective not in OBJECTIVES:
            raise ArnkitError(f"unknown ARN objective '{self.objective}'; choose one of: {', '.join(OBJECTIVES)}")
        from arnkit.defenses.arn.networks import PRESETS

        if self.preset not in PRESETS:
            raise ArnkitError(f"unknown ARN width preset '{self.preset}'; choose one of: {', '.join(PRESETS)}")
        for name in ("lambda1", "lambda2", "theta", "mse_weight", "gp_weight", "guide_weight"):
            value = getattr(self, name)
            if not value >= 0:  # also rejects NaN
                raise ArnkitError(f"ARN weight {name} must be >= 0, got {value}; pass a non-negative number")
        if not self.learning_rate > 0:
            raise ArnkitError(f"ARN learning_rate must be > 0, got {self.learning_rate}")
        if self.lr_schedule not in LR_SCHEDULES:
            raise ArnkitError(
                f"unknown ARN lr_schedule '{self.lr_schedule}'; choose one of: {', '.join(LR_SCHEDULES)}"
            )
        if self.lr_schedule == "cosine" and not self.lr_decay_steps > 0:
            raise ArnkitError(
                f"ARN lr_schedule 'cosine' needs lr_decay_steps > 0, got {self.lr_decay_steps}; "
                "pass the run's step count"
            )
        if not 0.0 <= self.ema < 1.0:  # also rejects NaN
            raise ArnkitError(f"ARN ema must be in [0, 1) (0 = off; 0.999 is typical), got {self.ema}")
        from arnkit.defenses.arn.networks import GENERATORS

        if self.generator not in GENERATORS:
            raise ArnkitError(f"unknown ARN generator '{self.generator}'; choose one of: {', '.join(GENERATORS)}")
        self._check_adaptive()
        self._check_families()

    def _check_families(self) -> None:
        families = self.adaptive_families
        if isinstance(families, str):  # "pgd_linf,flow", as the CLI writes it
            families = tuple(name.strip() for name in families.split(",") if name.strip())
        object.__setattr__(self, "adaptive_families", tuple(families))  # a JSON list reads back as a tuple
        for name in self.adaptive_families:
            if name not in ADAPTIVE_FAMILIES:
                raise ArnkitError(f"unknown adaptive attack family '{name}'; choose from: {', '.join(ADAPTIVE_FAMILIES)}")
        if not self.adaptive_families:
            return
        if not self.adaptive:
            raise ArnkitError("adaptive_families needs adaptive training: set adaptive_share > 0 (--adaptive)")
        for name in self.adaptive_families:
            budget = ADAPTIVE_FAMILIES[name]
            if budget is not None and not getattr(self, budget) > 0:
                raise ArnkitError(f"adaptive family '{name}' needs {budget} > 0, got {getattr(self, budget)}; "
                                  "pass the dataset's budget (arnkit train fills it)")

    def _check_adaptive(self) -> None:
        if not 0.0 <= self.adaptive_share <= 1.0:  # also rejects NaN
            raise ArnkitError(f"ARN adaptive_share must be in [0, 1], got {self.adaptive_share}; 0 turns adaptive "
                              "training off, 1 crafts one white-box example per natural image")
        if not self.adaptive:
            return
        if int(self.adaptive_steps) < 1:
            raise ArnkitError(f"ARN adaptive_steps must be >= 1, got {self.adaptive_steps}")
        if not self.adaptive_eps > 0 or not self.adaptive_step_size >= 0:
            raise ArnkitError(f"ARN adaptive_eps must be > 0 and adaptive_step_size >= 0, got {self.adaptive_eps} "
                              f"and {self.adaptive_step_size}")
        if self.adaptive_update not in ADAPTIVE_UPDATES:
            raise ArnkitError(f"unknown ARN adaptive_update '{self.adaptive_update}'; choose one of: "
                              f"{', '.join(ADAPTIVE_UPDATES)}")
        if self.adaptive_guide_weight is not None and not self.adaptive_guide_weight >= 0:
            raise ArnkitError(f"ARN adaptive_guide_weight must be >= 0, got {self.adaptive_guide_weight}")

    @property
    def adaptive(self) -> bool:
        """True when the defense is leaked to white-box PGD while it trains (adaptive_share > 0)."""
        return self.adaptive_share > 0

    @property
    def adaptive_step(self) -> float:
        return self.adaptive_step_size or 2.5 * self.adaptive_eps / int(self.adaptive_steps)

    @property
    def adaptive_guide(self) -> float:
        return self.guide_weight if self.adaptive_guide_weight is None else self.adaptive_guide_weight

    @classmethod
    def for_dataset(cls, name: str, *, objective: str = "paper", **overrides: Any) -> ARNConfig:
        """The paper's Section 4.1 weights for `name` (or the official code's weights for objective="reference")."""
        key = name.lower().replace("-", "").replace("_", "")
        if objective == "reference":
            return cls(objective="reference", **{**REFERENCE_WEIGHTS, **overrides})
        if key not in PAPER_WEIGHTS:
            raise ArnkitError(
                f"no ARN loss weights for dataset '{name}'; choose one of: {', '.join(PAPER_WEIGHTS)} "
                "or pass lambda1/lambda2/theta yourself"
            )
        return cls.with_weights(PAPER_WEIGHTS[key], objective=objective, **overrides)

    @classmethod
    def with_weights(cls, weights: tuple[float, float, float], *, objective: str = "paper",
                     **overrides: Any) -> ARNConfig:
        """A config with Section 4.1's (lambda1, lambda2, theta) given (a dataset preset's `arn.weights`), or the
        official code's weights for objective="reference"."""
        if objective == "reference":
            return cls(objective="reference", **{**REFERENCE_WEIGHTS, **overrides})
        lambda1, lambda2, theta = weights
        return cls(**{"objective": objective, "lambda1": lambda1, "lambda2": lambda2, "theta": theta, **overrides})

    def replace(self, **changes: Any) -> ARNConfig:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        # Written only when set: run ids hash this dict, and runs from before the option keep theirs.
        if out["guide_weight"] == 0.0:
            del out["guide_weight"]
        if not self.adaptive:
            for name in ADAPTIVE_FIELDS:
                del out[name]
        if not self.adaptive_families:
            for name in FAMILY_FIELDS:
                del out[name]
        else:
            out["adaptive_families"] = list(self.adaptive_families)
        if self.generator == "paper":
            del out["generator"]
        if not self.ema:
            del out["ema"]
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ARNConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ArnkitError(f"unknown ARN config keys {unknown}; this file was written by a newer arnkit?")
        return cls(**data)
