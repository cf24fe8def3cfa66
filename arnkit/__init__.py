"""arnkit: defend image classifiers against seen and unseen adversarial attacks.

Implements "Towards Defending against Adversarial Examples via Attack-Invariant Features"
(Zhou et al., ICML 2021) on Keras 3: TensorFlow by default, JAX and torch too (arnkit.backend).
"""

from arnkit import backend as _backend
from arnkit import runtime as _runtime

# Before anything imports TensorFlow: oneDNN kernels on every x86-64 CPU, not only AVX-512 ones.
_runtime.prefer_onednn()
# Before anything imports Keras: with no TensorFlow installed and no backend chosen, run on JAX.
_backend.choose_default()

from arnkit.errors import ArnkitError  # noqa: E402

__version__ = "0.1.0"

__all__ = ["ArnkitError", "__version__", "defend"]


def __getattr__(name: str):
    """The one-call API, `arnkit.defend(...)`, loaded on first use: importing arnkit stays light (no Keras, no
    TensorFlow) and the root package imports nothing above the ground floor at import time."""
    if name == "defend":
        from arnkit.pipeline.defend import defend

        return defend
    raise AttributeError(f"module 'arnkit' has no attribute '{name}'")
