"""docs/reliability.md is a table of faults with the test that asserts each; this keeps that table true.

Every row must name a test function that exists, and every backticked fragment of its result column must
appear verbatim in that function's source, so neither the doc nor the message can drift alone."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "reliability.md"


def _rows() -> list[tuple[str, str, str]]:
    rows = []
    for line in DOC.read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 4 or not line.startswith("|") or set(cells[0]) <= {"-", " "} or cells[0] == "fault tried":
            continue
        rows.append((cells[0], cells[2], cells[3].strip("`")))
    return rows


def _function_source(test: str) -> str | None:
    path, _, name = test.partition("::")
    file = ROOT / path
    if not file.is_file() or not name:
        return None
    source = file.read_text()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name == name.split("[")[0]:
            return ast.get_source_segment(source, node)
    return None


def test_the_table_has_rows():
    assert len(_rows()) >= 10, "docs/reliability.md lost its table"


@pytest.mark.parametrize(("fault", "result", "test"), _rows(), ids=[r[0][:40] for r in _rows()])
def test_each_row_is_asserted_by_its_test(fault: str, result: str, test: str):
    source = _function_source(test)
    assert source is not None, f"{fault!r}: no test {test}"
    fragments = re.findall(r"`([^`]+)`", result)
    assert fragments, f"{fault!r}: the result quotes nothing in backticks"
    missing = [f for f in fragments if f not in source]
    assert not missing, f"{fault!r}: {test} does not assert {missing}"
