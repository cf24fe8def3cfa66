"""The Defense interface every defense (ARN and the baselines) fits, so evaluation treats them alike.

Two kinds exist in the paper's comparisons:
- a *pre-processor* (ARN, APE-GAN, HGD) maps images in [0,1] to restored images in [0,1] and goes in front
  of any classifier: `protect(classifier)` composes them;
- a *robust classifier* (AT_PGD, DOA) replaces the target: `protect(classifier)` returns its own model.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import keras

Kind = Literal["preprocessor", "classifier"]


@dataclass
class Defense:
    name: str
    kind: Kind
    model: Any  # keras.Model: images -> images (preprocessor) or images -> logits (classifier)
    meta: dict[str, Any] = field(default_factory=dict)

    def protect(self, classifier: Any) -> keras.Model:
        """The defended pipeline x -> logits, differentiable end to end where the defense is."""
        if self.kind == "classifier":
            return self.model
        return compose(self.model, classifier, name=f"{self.name}_protected")

    def restore(self, x: Any) -> Any:
        """Restored images (pre-processors only)."""
        if self.kind != "preprocessor":
            raise TypeError(f"{self.name} is a robust classifier, it does not restore images")
        return self.model(x, training=False)


def compose(preprocessor: Any, classifier: Any, *, name: str = "protected") -> keras.Model:
    """x -> classifier(preprocessor(x)) as one Keras model (shape taken from the classifier's input)."""
    shape = tuple(classifier.input_shape[1:])
    inputs = keras.Input(shape=shape, name="image")
    return keras.Model(inputs, classifier(preprocessor(inputs)), name=name)


def no_defense() -> Defense:
    """The 'NONE' row of the paper's tables: the identity pre-processor."""
    return Defense(name="none", kind="preprocessor", model=keras.layers.Identity(name="identity"))
