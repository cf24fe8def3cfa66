"""The Defense interface every defense (ARN and the baselines) fits, so evaluation treats them alike.

Two kinds exist in the paper's comparisons:
- a *pre-processor* (ARN, APE-GAN, HGD) maps images in [0,1] to restored images in [0,1] and goes in front
  of any classifier: `protect(classifier)` composes them;
- a *robust classifier* (AT_PGD, DOA) replaces the target: `protect(classifier)` returns its own model.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from arnkit.runs.defense_record import Kind

if TYPE_CHECKING:  # keras is imported where used: the defense registry's names must load without TensorFlow
    import keras


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

    @property
    def restores(self) -> bool:
        """Whether `restore` gives images (a pre-processor) rather than raising (a robust classifier)."""
        return self.kind == "preprocessor"

    @property
    def is_identity(self) -> bool:
        """The NONE row: nothing between the attacker and the classifier."""
        return self.name == "none"

    @property
    def white_box_checks(self) -> bool:
        """Whether the adaptive-attack self-checks (gradient, iterations, large eps) apply: every real defense,
        since gradients can be masked by a robust classifier as well as by a pre-processor. The white vs BPDA
        vs gray ordering check needs a pre-processor to go around, so it also asks `restores`."""
        return not self.is_identity

    def predict(self, classifier: Any, x: np.ndarray, batch_size: int = 500) -> tuple[np.ndarray, np.ndarray | None]:
        """(predicted classes, restored images or None for a robust classifier) of the defended pipeline on x."""
        from keras import ops

        from arnkit.attacks.adaptive import apply_transform

        preds, restored = [], []
        for start in range(0, len(x), batch_size):
            xb = x[start:start + batch_size]
            if self.kind == "classifier":
                logits = apply_transform(self.model, xb, False)
            else:
                rb = ops.convert_to_numpy(apply_transform(self.model, xb, False, image_to_image=True))
                restored.append(rb)
                logits = apply_transform(classifier, rb, False)
            preds.append(np.argmax(ops.convert_to_numpy(logits), axis=-1))
        pred = np.concatenate(preds) if preds else np.zeros(0, np.int64)
        return pred, (np.concatenate(restored) if restored else None)


def compose(preprocessor: Any, classifier: Any, *, name: str = "protected") -> keras.Model:
    """x -> classifier(preprocessor(x)) as one Keras model (shape taken from the classifier's input)."""
    import keras

    shape = tuple(classifier.input_shape[1:])
    inputs = keras.Input(shape=shape, name="image")
    return keras.Model(inputs, classifier(preprocessor(inputs)), name=name)


def no_defense() -> Defense:
    """The 'NONE' row of the paper's tables: the identity pre-processor."""
    import keras

    return Defense(name="none", kind="preprocessor", model=keras.layers.Identity(name="identity"))
