"""How TensorFlow runs on this machine: oneDNN kernels on by default, and a record of what ran.

TensorFlow turns its oneDNN (formerly MKL) kernels on by default only on CPUs with AVX-512 / AMX-class
features. On AVX2-only x86 CPUs it falls back to Eigen, which measured 1.6-1.9x slower for PGD and about
1.7x slower for an ARN step (docs/benchmarks.md). `prefer_onednn()` asks for oneDNN on every x86-64 CPU
unless the user set `TF_ENABLE_ONEDNN_OPTS` themselves; it must run before TensorFlow is imported, so
`arnkit/__init__.py` calls it. Results agree with Eigen's to float round-off (tests/test_runtime.py).

    from arnkit import runtime
    runtime.describe()   # {"tensorflow": "2.21.0", "onednn": True, "cpu_isa": "avx512", ...}
"""

from __future__ import annotations

import os
import platform
import sys
from functools import lru_cache
from typing import Any

ONEDNN_VAR = "TF_ENABLE_ONEDNN_OPTS"
ISA_CAP_VAR = "ONEDNN_MAX_CPU_ISA"
_X86 = {"x86_64", "amd64", "x64"}


def prefer_onednn() -> str | None:
    """Set TF_ENABLE_ONEDNN_OPTS=1 on x86-64 when nobody chose; return the value TF will see (None: unset).

    Too late once TensorFlow is imported (the flag is read at import), so it then changes nothing."""
    if ONEDNN_VAR in os.environ:
        return os.environ[ONEDNN_VAR]
    if "tensorflow" in sys.modules or platform.machine().lower() not in _X86:
        return None
    os.environ[ONEDNN_VAR] = "1"
    return "1"


@lru_cache(maxsize=1)
def cpu_isa() -> str:
    """The widest x86 vector extension the CPU reports: "avx512", "avx2", "avx", or "other"."""
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    break
            else:
                return "other"
    except OSError:
        return "other"
    for isa, flag in (("avx512", "avx512f"), ("avx2", "avx2"), ("avx", "avx")):
        if flag in flags:
            return isa
    return "other"


def onednn_enabled() -> bool | None:
    """Whether the imported TensorFlow runs oneDNN kernels (None: TensorFlow is not importable)."""
    try:
        from tensorflow.python.util import _pywrap_util_port
    except ImportError:
        return None
    return bool(_pywrap_util_port.IsMklEnabled())


def describe() -> dict[str, Any]:
    """What a timing or an artifact ran on: TF version, oneDNN on or off, its ISA cap, the CPU's ISA."""
    try:
        import tensorflow as tf

        version = tf.__version__
    except ImportError:
        version = None
    return {"tensorflow": version, "onednn": onednn_enabled(), ONEDNN_VAR: os.environ.get(ONEDNN_VAR),
            ISA_CAP_VAR: os.environ.get(ISA_CAP_VAR), "cpu_isa": cpu_isa(), "cpus": os.cpu_count(),
            "machine": platform.machine()}
