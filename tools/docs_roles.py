"""A griffe extension for the docs site (``make docs``): Sphinx roles in docstrings as code.

The docstrings cross-reference with Sphinx roles (``:class:`~gradcheck.Tolerance```), which
mkdocstrings shows verbatim. This rewrites each role as inline code of the name it shows
(``Tolerance`` for a ``~`` reference, the full path otherwise) when the docs are built; the
source is untouched.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

ROLE = re.compile(r":(?:py:)?(?:class|func|meth|mod|data|attr|exc|obj):`(~?)([^`]+)`")


def as_code(match: re.Match[str]) -> str:
    """``:class:`~a.b.C``` -> ```C```; ``:func:`a.b``` -> ```a.b```."""
    short, target = match.group(1), match.group(2)
    return f"`{target.rsplit('.', 1)[-1] if short else target}`"


class SphinxRoles(griffe.Extension):
    """Rewrite Sphinx roles in every docstring of the loaded package."""

    def on_package(self, *, pkg: griffe.Module, **kwargs: Any) -> None:
        self._rewrite(pkg, set())

    def _rewrite(self, obj: Any, seen: set[int]) -> None:
        if id(obj) in seen or getattr(obj, "is_alias", False):
            return
        seen.add(id(obj))
        if obj.docstring is not None:
            obj.docstring.value = ROLE.sub(as_code, obj.docstring.value)
        for member in obj.members.values():
            self._rewrite(member, seen)
