"""Report files: Markdown, JSON and HTML side by side, for the CLI and the pytest plugin.

Two labels never share a file within a run (:class:`ReportNames`), a folder that cannot be
written is refused before any check runs (:func:`check_writable`), and a file that cannot be
written afterwards is a warning, never the end of the run (:func:`write_reports_or_warn`).
"""

from __future__ import annotations

import hashlib
import re
import tempfile
from collections.abc import Callable
from pathlib import Path

from gradcheck.errors import InputError
from gradcheck.report.model import Report
from gradcheck.report.text import visible

MAX_NAME = 120
HASH_CHARS = 8


def safe_name(name: str) -> str:
    """A file-name stem from any label (a pytest node id, ``file.py:NAME``); several labels
    can give the same stem: :class:`ReportNames` tells them apart."""
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-.")
    return (stem or "report")[:MAX_NAME]


def short_hash(name: str) -> str:
    """A few hex digits of the label as given (before it was made file-safe)."""
    return hashlib.sha1(name.encode("utf-8", "surrogatepass")).hexdigest()[:HASH_CHARS]


class ReportNames:
    """File-name stems for one run's reports, one per label and never one for two labels.

    A label gets :func:`safe_name`'s stem unless another label of the run has it (``a/b.py:make``
    and ``a-b.py:make``, test ids ``a/b`` and ``a b``, labels that differ only in case, which
    are one file on macOS and Windows, or only past the :data:`MAX_NAME` cut); then the stem
    ends in a short hash of the label itself. The same label again gets the same stem.
    """

    def __init__(self) -> None:
        self._owners: dict[str, str] = {}  # casefolded stem -> the label that has it

    def stem(self, name: str) -> str:
        stem = safe_name(name)
        if self._owners.setdefault(stem.casefold(), name) != name:
            stem = f"{stem[: MAX_NAME - HASH_CHARS - 1]}-{short_hash(name)}"
            self._owners.setdefault(stem.casefold(), name)
        return stem


def check_writable(folder: Path, option: str) -> Path:
    """Create ``folder`` if needed and make sure a file can be written in it, before any check
    runs; otherwise an :class:`InputError` naming ``option`` (``--out``) and the reason."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise InputError(
            f"{option} {folder}: cannot write reports there ({reason}); give a folder "
            "you can write to"
        ) from None
    return folder


def write_reports(
    report: Report,
    name: str,
    out: Path,
    max_rows: int | None = 10,
    title: str | None = None,
    stem: str | None = None,
) -> list[Path]:
    """Write ``<stem>.md``, ``<stem>.json`` and ``<stem>.html`` into ``out`` (created if
    missing); the stem is ``name`` made file-safe unless given. Returns the paths written."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    stem = stem or safe_name(name)
    title = title or name
    paths = [out / f"{stem}.md", out / f"{stem}.json", out / f"{stem}.html"]
    markdown = f"# {visible(title, markdown=True)}\n\n" + report.to_markdown(max_rows=max_rows)
    paths[0].write_text(markdown, encoding="utf-8")
    paths[1].write_text(report.to_json() + "\n", encoding="utf-8")
    paths[2].write_text(report.to_html(title=title, max_rows=max_rows), encoding="utf-8")
    return paths


def write_reports_or_warn(
    report: Report,
    name: str,
    out: Path,
    warn: Callable[[str], None],
    max_rows: int | None = 10,
    title: str | None = None,
    stem: str | None = None,
) -> list[Path]:
    """:func:`write_reports`, but a file that cannot be written (disk full, the folder removed
    meanwhile, a folder in the way) is one line passed to ``warn`` and ``[]`` is returned: the
    check's own verdict and diff table must never be lost to it."""
    try:
        return write_reports(report, name, out, max_rows=max_rows, title=title, stem=stem)
    except OSError as exc:
        where = exc.filename if exc.filename is not None else out
        warn(
            f"could not write the reports of {visible(name)} ({visible(str(where))}: "
            f"{exc.strerror or type(exc).__name__}); the verdict stands"
        )
        return []
