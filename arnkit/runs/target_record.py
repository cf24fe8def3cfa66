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

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


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

    def matches(self, model: str, seed: int) -> bool:
        return self.record.model == model and int(self.record.seed) == int(seed)
