"""Keep TensorFlow's C++ start-up log off the user's terminal.

Importing TensorFlow loads two native libraries (the framework and its Python bindings), and each prints
`All log messages before absl::InitializeLog() ...` and the oneDNN notice once, before TF_CPP_MIN_LOG_LEVEL
applies: that is why one command printed the pair twice. The first `import keras` on the TensorFlow backend
is that import, so it runs with fd 2 pointed at /dev/null. The user's own TF_CPP_MIN_LOG_LEVEL, or
`arnkit --verbose`, leaves TensorFlow's log as TensorFlow writes it."""

from __future__ import annotations

import os
import sys

LEVEL_VAR = "TF_CPP_MIN_LOG_LEVEL"
# Read once, when the CLI module is imported: main.py sets the variable right after.
USER_CHOSE_LEVEL = LEVEL_VAR in os.environ
_quiet = {"on": not USER_CHOSE_LEVEL}


def configure(verbose: bool) -> None:
    """Quiet TensorFlow for this process unless the user chose a log level or asked for --verbose."""
    _quiet["on"] = not (USER_CHOSE_LEVEL or verbose)
    if _quiet["on"]:
        # TF's C++ layer logs benign grappler/oneDNN "errors" at level 2; real failures surface as exceptions.
        os.environ[LEVEL_VAR] = "3"
    elif not USER_CHOSE_LEVEL:
        os.environ.pop(LEVEL_VAR, None)


def quiet() -> bool:
    return _quiet["on"]


def import_keras() -> None:
    """Import Keras (and, on its TensorFlow backend, TensorFlow) with fd 2 silenced while quiet."""
    if "keras" in sys.modules and "tensorflow" in sys.modules:
        return
    if not _quiet["on"]:
        import keras  # noqa: F401
        return
    sys.stderr.flush()
    saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        import keras  # noqa: F401

        if keras.backend.backend() == "tensorflow":
            import tensorflow  # noqa: F401
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)
