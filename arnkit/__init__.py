"""arnkit: defend image classifiers against seen and unseen adversarial attacks.

Implements "Towards Defending against Adversarial Examples via Attack-Invariant Features"
(Zhou et al., ICML 2021) on Keras 3 / TensorFlow.
"""

from arnkit.errors import ArnkitError

__version__ = "0.1.0"

__all__ = ["ArnkitError", "__version__"]
