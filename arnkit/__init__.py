"""arnkit: defend image classifiers against seen and unseen adversarial attacks.

Implements "Towards Defending against Adversarial Examples via Attack-Invariant Features"
(Zhou et al., ICML 2021) on Keras 3 / TensorFlow.
"""

from arnkit import runtime as _runtime

# Before anything imports TensorFlow: oneDNN kernels on every x86-64 CPU, not only AVX-512 ones.
_runtime.prefer_onednn()

from arnkit.errors import ArnkitError  # noqa: E402

__version__ = "0.1.0"

__all__ = ["ArnkitError", "__version__"]
