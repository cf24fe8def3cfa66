"""Your model, your data, with defaults (issue 28's benchmark): scikit-learn's digits as 32x32 PNG class folders
and a user-defined Keras CNN, from `arnkit data import folder` to the gray-box table of `arnkit train --target`,
on this machine. Reports wall time per command, peak RSS (children included), the table and the CPU flags.

    python bench/bench_user_digits.py [--workspace DIR] [--side 32]      # JSON on stdout and in DIR/bench.json

Each command runs as a child process exactly as a user types it; the CNN is trained first (not timed) and saved
as .keras, as the user would bring it.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

ARNKIT = str(Path(sys.executable).with_name("arnkit"))


def cpu_flags() -> dict[str, str]:
    text = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
    fields = dict(line.split(":", 1) for line in text.splitlines() if ":" in line)
    flags = fields.get("Flags", "").split()
    return {"model": fields.get("Model name", "").strip(),
            "vector_flags": " ".join(f for f in flags if f.startswith(("avx", "fma", "amx")))}


def timed(*args: str) -> tuple[float, str]:
    """(wall seconds, stdout) of one arnkit command."""
    start = time.perf_counter()
    done = subprocess.run([ARNKIT, *args], capture_output=True, text=True)
    if done.returncode:
        sys.exit(f"arnkit {' '.join(args)} failed:\n{done.stderr[-2000:]}")
    return time.perf_counter() - start, done.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workspace", type=Path, default=None)
    parser.add_argument("--side", type=int, default=32)
    args = parser.parse_args()
    root = args.workspace or Path(tempfile.mkdtemp(prefix="arnkit-bench-digits-"))
    ws = root / "ws"

    from user_fixtures import user_cnn, write_digits

    from arnkit import data

    png = write_digits(root / "png", side=args.side)
    import_s, _ = timed("data", "import", "folder", str(png), "--name", "digits", "--workspace", str(ws), "--json")
    x, y, info = data.load_arrays("digits", "train", data_dir=ws / "data")
    model = user_cnn(info.shape, info.num_classes, x, y, epochs=15)
    model.save(root / "my.keras")
    train_s, out = timed("train", "--dataset", "digits", "--target", str(root / "my.keras"), "--workspace", str(ws),
                         "--json")
    record = json.loads(out)
    result = {
        "command": f"python bench/bench_user_digits.py --side {args.side}",
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "cpu": cpu_flags(),
        "dataset": {"shape": list(info.shape), "train": int(info.split_sizes["train"]),
                    "test": int(info.split_sizes["test"]), "eps": info.eps},
        "wall_seconds": {"import": round(import_s, 1), "train (target check, pools, ARN, report)": round(train_s, 1),
                         "total": round(import_s + train_s, 1)},
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024),
        "phase_seconds": record["phase_seconds"], "arn_steps": record["steps"], "width": record["width"],
        "report_images": json.loads(Path(record["evaluation_files"]["json"]).read_text())["n"],
        "table": record["evaluation"], "runtime": record["runtime"],
    }
    (root / "bench.json").write_text(json.dumps(result, indent=1))
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
