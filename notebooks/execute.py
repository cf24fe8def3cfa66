"""Execute every notebook in a folder in place-free mode (outputs are not written back); exit 1 on error."""

import sys
from pathlib import Path

import nbformat
from nbclient import NotebookClient


def main(folder: str) -> int:
    failures = 0
    for path in sorted(Path(folder).glob("*.ipynb")):
        notebook = nbformat.read(path, as_version=4)
        try:
            NotebookClient(notebook, timeout=900, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}).execute()
            print(f"ok   {path}")
        except Exception as exc:  # report every notebook, then fail
            failures += 1
            print(f"FAIL {path}: {str(exc).splitlines()[-1] if str(exc) else type(exc).__name__}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "notebooks"))
