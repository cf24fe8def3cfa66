"""How often one `arnkit train` call resolves the dataset by name, loads the target and reads cached HDF5
(docs/architecture.md, "The life of one arnkit train call").

    python bench/count_resolutions.py

Synthetic data, a temporary workspace, seconds. Prints one line for a cold workspace and one for a warm one
(target and pools cached, a new run folder)."""

from __future__ import annotations

import collections
import os
import tempfile
from typing import Any

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def main() -> None:
    import arnkit.runs.target as target_service
    from arnkit import adversarial_store, data
    from arnkit.pipeline.train import train

    counts: collections.Counter[str] = collections.Counter()

    def count(module: Any, name: str, label: str) -> None:
        original = getattr(module, name)

        def counted(*args: Any, **kwargs: Any) -> Any:
            counts[label + (" (by name)" if args and isinstance(args[0], str) else "")] += 1
            return original(*args, **kwargs)

        setattr(module, name, counted)

    count(data, "info", "data.info")
    count(data, "load_arrays", "data.load_arrays")
    count(target_service, "load_model", "target .keras loaded")
    count(adversarial_store, "load", "HDF5 reads")
    workspace = tempfile.mkdtemp(prefix="arnkit-count-")
    for label, steps in (("cold", 2), ("warm", 3)):
        counts.clear()
        record = train("synthetic", "arn", workspace=workspace, seed=0, steps=steps, width="tiny", batch_size=16,
                       pool_size=32, eval_limit=16, seen="fgsm,pgd_n")
        print(label, dict(sorted(counts.items())), "reused:", record["reused"], flush=True)


if __name__ == "__main__":
    main()
