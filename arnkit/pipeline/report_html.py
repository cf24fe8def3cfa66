"""The HTML rendering of `arnkit report`'s markdown, as ONE self-contained file: every figure is embedded as a
base64 data URI (nothing links to the workspace, so the file can be mailed), `code` and **bold** are rendered,
and a figure that cannot be read becomes a visible note instead of a broken image."""

from __future__ import annotations

import base64
import html
import re
from pathlib import Path

_CODE = re.compile(r"`([^`]+)`")
_BOLD = re.compile(r"\*\*([^*]+)\*\*")
_MIME = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".svg": "image/svg+xml"}
_STYLE = ("body{font-family:sans-serif;max-width:1100px;margin:auto;padding:0 1em}table{border-collapse:collapse;"
          "margin:.5em 0}td,th{border:1px solid #ccc;padding:2px 6px;text-align:right}td:first-child,"
          "th:first-child{text-align:left}code{background:#f3f3f3;padding:0 3px}img{max-width:100%}"
          ".missing{color:#a00}")


def inline(text: str) -> str:
    """Escape `text` for HTML, then render `code` and **bold**."""
    return _BOLD.sub(r"<strong>\1</strong>", _CODE.sub(r"<code>\1</code>", html.escape(text)))


def data_uri(path: Path) -> str | None:
    """The file as a data URI, or None when it cannot be read (the caller says so in the page)."""
    try:
        payload = base64.b64encode(path.read_bytes()).decode("ascii")
    except OSError:
        return None
    return f"data:{_MIME.get(path.suffix.lower(), 'application/octet-stream')};base64,{payload}"


def _table(rows: list[str]) -> str:
    cells = [[inline(c.strip()) for c in row.strip().strip("|").split("|")] for row in rows
             if not set(row.replace("|", "").strip()) <= {"-", ":"}]
    head, *body = cells
    return ("<table><tr>" + "".join(f"<th>{c}</th>" for c in head) + "</tr>"
            + "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in body) + "</table>")


def render(markdown: str, base: Path, title: str = "arnkit report") -> str:
    """HTML for `markdown` (headings, tables, lists, images, paragraphs); image paths are relative to `base`."""
    out: list[str] = []
    table: list[str] = []
    items: list[str] = []

    def flush() -> None:
        if table:
            out.append(_table(table))
            table.clear()
        if items:
            out.append("<ul>" + "".join(f"<li>{i}</li>" for i in items) + "</ul>")
            items.clear()

    for line in markdown.splitlines():
        if line.startswith("|"):
            table.append(line)
            continue
        if line.startswith("- "):
            items.append(inline(line[2:]))
            continue
        flush()
        if line.startswith("#"):
            level = min(len(line) - len(line.lstrip("#")), 6)
            out.append(f"<h{level}>{inline(line.lstrip('#').strip())}</h{level}>")
        elif line.startswith("![") and line.endswith(")") and "](" in line:
            alt, src = line[2:line.index("](")], line[line.index("](") + 2:-1]
            uri = data_uri(base / src)
            out.append(f'<figure><img alt="{html.escape(alt)}" src="{uri}"><figcaption>{inline(alt)}</figcaption>'
                       "</figure>" if uri else f'<p class="missing">figure {inline(alt)} could not be read '
                       f"({html.escape(src)})</p>")
        elif line.strip():
            out.append(f"<p>{inline(line)}</p>")
    flush()
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{_STYLE}</style></head><body>\n" + "\n".join(out) + "\n</body></html>\n")
