"""Report files: Markdown, JSON and HTML side by side, for the CLI and the pytest plugin."""

from __future__ import annotations

import re
from pathlib import Path

from gradcheck.report.model import Report

MAX_NAME = 120


def safe_name(name: str) -> str:
    """A file-name stem from any label (a pytest node id, ``file.py:NAME``)."""
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-.")
    return (stem or "report")[:MAX_NAME]


def write_reports(
    report: Report, name: str, out: Path, max_rows: int | None = 10, title: str | None = None
) -> list[Path]:
    """Write ``<name>.md``, ``<name>.json`` and ``<name>.html`` into ``out`` (created if
    missing); ``name`` is made file-safe. Returns the paths written."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    stem = safe_name(name)
    title = title or name
    paths = [out / f"{stem}.md", out / f"{stem}.json", out / f"{stem}.html"]
    paths[0].write_text(f"# {title}\n\n" + report.to_markdown(max_rows=max_rows), encoding="utf-8")
    paths[1].write_text(report.to_json() + "\n", encoding="utf-8")
    paths[2].write_text(report.to_html(title=title, max_rows=max_rows), encoding="utf-8")
    return paths
