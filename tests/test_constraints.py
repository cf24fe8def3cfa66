"""constraints.txt pins every dependency that pyproject.toml names, at versions its ranges allow.

CI (`.ci/run`), the README's commands and the nox sessions install through constraints.txt, so a range in
pyproject.toml that the pins fall out of, or a dependency added without a pin, must fail here, not drift."""

from __future__ import annotations

import importlib.util
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]


def pins(text: str) -> dict[str, Version]:
    """name -> exact version; every line is a comment or `name==version`, each name once."""
    found: dict[str, Version] = {}
    for line in text.splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        name, sep, version = line.partition("==")
        assert sep and name.strip() and " " not in version.strip(), f"not an exact pin: {line!r}"
        key = canonicalize_name(name)
        assert key not in found, f"{name} pinned twice"
        found[key] = Version(version.strip())
    return found


def declared(project: dict, extras: tuple[str, ...] = ("dev",)) -> list[Requirement]:
    """The core dependencies plus `extras`, following self-references such as `arnkit[tf]`."""
    name = canonicalize_name(project["name"])
    todo = [Requirement(r) for r in project["dependencies"]]
    todo += [Requirement(r) for extra in extras for r in project["optional-dependencies"][extra]]
    out: list[Requirement] = []
    while todo:
        req = todo.pop()
        if canonicalize_name(req.name) == name:
            todo += [Requirement(r) for extra in req.extras for r in project["optional-dependencies"][extra]]
        else:
            out.append(req)
    return out


def test_every_dependency_is_pinned_within_its_range():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pinned = pins((ROOT / "constraints.txt").read_text())
    requirements = declared(project)
    assert {"keras", "tensorflow-cpu", "jax", "torch", "pytest", "nox"} <= {canonicalize_name(r.name) for r in
                                                                          requirements}
    missing = sorted(r.name for r in requirements if canonicalize_name(r.name) not in pinned)
    assert not missing, f"add to constraints.txt (nox -s upgrade_pins): {missing}"
    outside = [f"{r.name}=={pinned[canonicalize_name(r.name)]} vs {r.specifier}" for r in requirements
               if not r.specifier.contains(pinned[canonicalize_name(r.name)], prereleases=True)]
    assert not outside, f"pins outside pyproject.toml's ranges: {outside}"
    assert canonicalize_name(project["name"]) not in pinned  # the package itself is never pinned


def test_torch_pin_is_the_cpu_build_and_jax_is_the_measured_one():
    pinned = pins((ROOT / "constraints.txt").read_text())
    # The CPU wheel that lies on disk; a plain 2.13.0 could resolve to a multi-GB CUDA build.
    assert pinned["torch"] == Version("2.13.0+cpu")
    assert pinned["jax"] == pinned["jaxlib"] == Version("0.10.2")  # what docs/ were measured on


def test_pins_parser_refuses_ranges_and_duplicates():
    assert pins("# c\nnumpy==2.4.6\n\nKeras==3.15.1\n") == {"numpy": Version("2.4.6"), "keras": Version("3.15.1")}
    for bad in ("numpy>=2\n", "numpy==2\nNumPy==2.1\n"):
        try:
            pins(bad)
        except AssertionError:
            continue
        raise AssertionError(f"accepted {bad!r}")


def test_upgrade_pins_writes_the_header_and_drops_arnkit():
    spec = importlib.util.spec_from_file_location("noxfile", ROOT / "noxfile.py")
    noxfile = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(noxfile)
    text = noxfile.pins_text("arnkit==0.1.0\nkeras==3.15.1\n\nnumpy==2.4.6\n")
    assert text == noxfile.PINS_HEADER + "keras==3.15.1\nnumpy==2.4.6\n"
    # The committed file is what the session writes: same header, then pins only.
    assert (ROOT / "constraints.txt").read_text().startswith(noxfile.PINS_HEADER)
    assert "arnkit" not in pins((ROOT / "constraints.txt").read_text())
