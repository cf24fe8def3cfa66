"""The built wheel holds every package: setuptools' explicit `packages` list in pyproject.toml must name each
folder of arnkit/ with an __init__.py (arnkit.runs was once missing, so `pip install .` could not import it;
the editable install of CI hid that)."""

from __future__ import annotations

import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_every_arnkit_package_is_listed_for_the_wheel():
    config = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(config["packages"])
    on_disk = {".".join(init.parent.relative_to(REPO).parts) for init in (REPO / "arnkit").rglob("__init__.py")}
    assert on_disk - listed == set(), f"add to [tool.setuptools] packages: {sorted(on_disk - listed)}"
    assert listed - on_disk == {"arnkit_cli"}
    assert config["package-dir"]["arnkit_cli"] == "cli" and (REPO / "cli" / "__init__.py").is_file()
