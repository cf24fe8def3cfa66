"""The typed record of a target classifier, and the loaded target a run context carries."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass
class TargetResult:
    dataset: str
    model: str
    path: str
    fingerprint: str
    test_accuracy: float
    test_error: float
    epochs: int
    seed: int
    train_seconds: float
    reused: bool
    arnkit_version: str
    runtime: dict[str, Any] | None = None  # TF, oneDNN and CPU it was trained on (None: an older record)
    # A user's model (`--target PATH.keras`): its source file, the wrapping attacked (input scale, output) and
    # the checks against the dataset; None for a zoo target (whose record stays as it was).
    user: dict[str, Any] | None = None
    sha256: str | None = None  # of the .keras file, checked on reuse (None: an older record or a user's model)
    # What it was trained on: the train split (val held out) and its rule (None: an older record, a user's model)
    train_split: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        for optional in ("user", "sha256", "train_split"):
            if out[optional] is None:
                out.pop(optional)
        return out


@dataclass(frozen=True)
class Target:
    """A loaded target classifier (images in [0, 1] -> logits) and its record."""

    model: Any
    record: TargetResult

    @property
    def fingerprint(self) -> str:
        return self.record.fingerprint

    @property
    def path(self) -> str:
        return self.record.path

    @property
    def is_user(self) -> bool:
        """A user's model (`--target PATH.keras`) rather than the workspace's zoo target."""
        return self.record.user is not None

    def matches(self, model: str, seed: int) -> bool:
        return self.record.model == model and int(self.record.seed) == int(seed)


class TargetWarning(UserWarning):
    """A user's target loads and fits the dataset but looks wrong (accuracy near chance); the CLI prints it as
    one `warning:` line."""
