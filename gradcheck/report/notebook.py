"""The report inline in a notebook: the HTML page's body as a fragment with scoped CSS.

A notebook shows ``_repr_html_`` inside its own page, so the fragment has no ``<html>`` or
``<body>`` and its style rules apply only inside ``<div class="gradcheck-report">`` (the page's
``body{...}`` rule would restyle the whole notebook otherwise).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from gradcheck.report.html import CSS, render_html

if TYPE_CHECKING:
    from gradcheck.report.model import Report

SCOPE = "gradcheck-report"


def scoped_css(css: str, scope: str = SCOPE) -> str:
    """Every rule of ``css`` restricted to ``.scope`` (``body`` becomes the scope itself)."""
    rules = []
    for chunk in css.split("}"):
        if "{" not in chunk:
            continue
        selectors, declarations = chunk.split("{", 1)
        scoped = [
            f".{scope}" if s.strip() == "body" else f".{scope} {s.strip()}"
            for s in selectors.split(",")
        ]
        rules.append(f"{','.join(scoped)}{{{declarations.strip()}}}")
    return "".join(rules)


def render_fragment(report: Report, max_rows: int | None = 10) -> str:
    """The HTML report without the page around it, for ``Report._repr_html_``."""
    page = render_html(report, max_rows=max_rows)
    body = page.split("<body>", 1)[1].rsplit("</body>", 1)[0]
    body = re.sub(r"<h1>.*?</h1>\n?", "", body, count=1)
    return f'<div class="{SCOPE}"><style>{scoped_css(CSS)}</style>{body}</div>'
