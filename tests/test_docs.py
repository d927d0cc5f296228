"""The documentation runs: every ```python block of README.md and docs/**/*.md is executed.

Each page's blocks run in order in one namespace (a later block may use what an earlier one
defined), in a fresh temporary folder, so a page reads as one script. A block opts out only with
a visible marker on the line before its fence, and the marker must give its reason:

    <!-- no-run: why this block cannot run here -->
    <!-- needs: torch -->          (skipped, with that reason, when torch is not installed)

A block marked `<!-- file: mine.py -->` is written to that file in the temporary folder
instead of being run, for later blocks (a command-line check of it) to use.

A block marked `<!-- output -->` shows what the page's Python printed: its lines must be
lines of the page's standard output so far, in order (a line ending in `...` is a prefix).
A block marked `<!-- excerpt: NAME -->` quotes the report of reference net NAME: its lines must
be lines of what `gradcheck check NAME --format markdown` prints now, in order (a line ending in
`...` is a prefix). When the engine's numbers change, regenerate (`make check`) and copy the
new lines from `reports/NAME.md`.

Cost: about 3 s of CPU for the whole file; the slowest pages are the asker's (two reference-net
reports, ~1 s) and, when torch is installed, the PyTorch page (importing torch, ~2 s).

The site itself (mkdocs, `make docs`) is not needed here. README's shell lines must name make
targets that exist, and its relative links must point at files that exist.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import io
import re
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
PAGES = [README, *sorted((ROOT / "docs").rglob("*.md"))]
FENCE = re.compile(r"^(`{3,})(.*)$")
MARKER = re.compile(r"^<!--\s*(no-run|needs|excerpt|output|file)(?::\s*(.*?))?\s*-->$")
SHELL_INFO = {"", "sh", "shell", "bash", "console"}


@dataclass(frozen=True)
class Block:
    """One fenced block of a Markdown page."""

    info: str  # the fence's info string: "python", "", "text", ...
    line: int  # 1-based line number of the block's first code line
    code: str
    marker: tuple[str, str | None] | None  # (kind, argument) of the comment on the line before


def blocks(path: Path) -> list[Block]:
    """The top-level fenced blocks of a Markdown page, in order."""
    found: list[Block] = []
    lines = path.read_text(encoding="utf-8").splitlines()
    i = 0
    while i < len(lines):
        opening = FENCE.match(lines[i])
        if opening is None:
            i += 1
            continue
        fence, info = opening.group(1), opening.group(2).strip()
        previous = lines[i - 1].strip() if i > 0 else ""
        marker = MARKER.match(previous)
        end = i + 1
        while end < len(lines) and lines[end].rstrip() != fence:
            end += 1
        if end == len(lines):
            raise AssertionError(f"{path.name}:{i + 1}: the fence {fence} is never closed")
        code = "\n".join(lines[i + 1 : end]) + "\n"
        found.append(Block(info, i + 2, code, marker.groups() if marker else None))
        i = end + 1
    return found


def in_order(quoted: str, printed: list[str]) -> str | None:
    """The first quoted line not found in ``printed`` after the previous one, else None."""
    position = 0
    for line in quoted.splitlines():
        if not line.strip():
            continue
        prefix = line[:-3] if line.endswith("...") else None
        for i in range(position, len(printed)):
            if same_line(printed[i], line) or (
                prefix is not None and printed[i].startswith(prefix)
            ):
                position = i + 1
                break
        else:
            return line
    return None


# a number of an error's size, as a report prints it (2.1e-10): its value comes from the loss's
# rounding, which differs between CPUs (BLAS kernels sum in different orders)
ERROR_SIZED = re.compile(r"[0-9]\.[0-9]e-(?:0[7-9]|[1-9][0-9])")


def same_line(printed: str, quoted: str) -> bool:
    """``printed`` is ``quoted``, but for error-sized numbers (below 1e-6), which may differ by
    up to a factor of 2: rounding noise, measured on the machine that runs the check."""
    if printed == quoted:
        return True
    ours, theirs = ERROR_SIZED.split(printed), ERROR_SIZED.split(quoted)
    if ours != theirs:  # everything but those numbers, exactly
        return False
    pairs = zip(ERROR_SIZED.findall(printed), ERROR_SIZED.findall(quoted), strict=True)
    return all(0.5 <= float(a) / float(b) <= 2.0 for a, b in pairs)


def python_blocks(path: Path) -> list[Block]:
    return [b for b in blocks(path) if b.info.split()[:1] == ["python"]]


def page_id(path: Path) -> str:
    return str(path.relative_to(ROOT))


@pytest.mark.parametrize("page", [p for p in PAGES if python_blocks(p)], ids=page_id)
def test_every_python_block_of_the_page_runs(page, tmp_path, monkeypatch):
    """The page's blocks, in order, in one namespace, in an empty folder; what they print
    contains every ``<!-- output -->`` block of the page, at its place."""
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, object] = {"__name__": "__docs__"}
    printed = io.StringIO()
    for block in blocks(page):
        kind, reason = block.marker or (None, None)
        if kind == "output":
            missing = in_order(block.code, printed.getvalue().splitlines())
            assert missing is None, f"{page_id(page)}:{block.line}: not printed: {missing!r}"
            continue
        if block.info.split()[:1] != ["python"]:
            continue
        if kind is not None:
            assert reason, f"{page_id(page)}:{block.line}: a {kind} marker needs its reason"
        if kind == "no-run":
            continue
        if kind == "file":  # the page shows a file of the user's; later blocks use it
            (tmp_path / reason).write_text(block.code, encoding="utf-8")
            continue
        if kind == "needs" and importlib.util.find_spec(reason) is None:
            pytest.skip(f"{page_id(page)}:{block.line} needs {reason}")
        # pad with newlines so a traceback names the line of the Markdown page
        source = "\n" * (block.line - 1) + block.code
        with contextlib.redirect_stdout(printed):
            exec(compile(source, str(page), "exec"), namespace)


def test_markers_are_rare_and_give_their_reason():
    """Opting out is the exception: every marker names a reason, and few blocks opt out."""
    marked = [(p, b) for p in PAGES for b in python_blocks(p) if b.marker is not None]
    total = sum(len(python_blocks(p)) for p in PAGES)
    for page, block in marked:
        if block.marker[0] != "output":
            assert block.marker[1], f"{page_id(page)}:{block.line}: marker without a reason"
    no_run = [pb for pb in marked if pb[1].marker[0] == "no-run"]
    assert len(no_run) <= max(3, total // 10), [f"{page_id(p)}:{b.line}" for p, b in no_run]


@functools.cache
def markdown_report(name: str) -> list[str]:
    """The lines ``gradcheck check NAME --format markdown`` prints (once per net: ~1 s each)."""
    from gradcheck.cli import main

    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        main(["check", name, "--format", "markdown"])
    return printed.getvalue().splitlines()


def excerpts() -> list[tuple[Path, Block]]:
    return [(p, b) for p in PAGES for b in blocks(p) if b.marker and b.marker[0] == "excerpt"]


@pytest.mark.parametrize(
    ("page", "block"), excerpts(), ids=lambda x: page_id(x) if isinstance(x, Path) else x.line
)
def test_report_excerpts_are_what_the_check_prints_now(page, block):
    name = block.marker[1]
    missing = in_order(block.code, markdown_report(name))
    assert missing is None, (
        f"{page_id(page)}:{block.line}: not in the report of {name}: {missing!r}"
    )


def test_statuses_page_lists_every_status_in_order_and_which_fail():
    """docs/reference/statuses.md against the code: every status, worst first, and `fails?`."""
    from gradcheck.core.compare import FAILING, STATUS_ORDER

    page = (ROOT / "docs" / "reference" / "statuses.md").read_text(encoding="utf-8")
    rows = re.findall(r"^\| `(\w+)` \|.*\| (yes|no) \|$", page, flags=re.MULTILINE)
    assert [status for status, _ in rows] == list(STATUS_ORDER)
    assert {status for status, fails in rows if fails == "yes"} == set(FAILING)


def test_cli_page_lists_every_exit_code():
    from gradcheck import cli

    page = (ROOT / "docs" / "reference" / "cli.md").read_text(encoding="utf-8")
    documented = {int(code) for code in re.findall(r"^\| (\d+) \|", page, flags=re.MULTILINE)}
    codes = {cli.EXIT_OK, cli.EXIT_MISMATCH, cli.EXIT_USAGE, cli.EXIT_INTERRUPTED, cli.EXIT_PIPE}
    assert documented == codes


def test_plugin_page_lists_every_option():
    source = (ROOT / "gradcheck" / "plugin.py").read_text(encoding="utf-8")
    page = (ROOT / "docs" / "reference" / "plugin.md").read_text(encoding="utf-8")
    registered = set(re.findall(r'addoption\(\s*"(--gradcheck-[a-z-]+)"', source))
    documented = set(re.findall(r"^\| `(--gradcheck-[a-z-]+)", page, flags=re.MULTILINE))
    assert registered
    assert documented == registered


def test_plugin_header_shown_in_the_docs_is_what_the_plugin_prints():
    """With default options (the header quoted in the pytest how-to and the plugin reference)."""
    from types import SimpleNamespace

    from gradcheck import plugin
    from gradcheck.assertions import Settings

    header = plugin.pytest_report_header(SimpleNamespace(stash={plugin.SETTINGS: Settings()}))
    for page in ("how-to/pytest.md", "reference/plugin.md"):
        text = (ROOT / "docs" / page).read_text(encoding="utf-8").splitlines()
        for line in header:
            assert line in text, f"docs/{page} does not show the header line {line!r}"


def test_api_page_documents_every_public_name():
    """Every name in gradcheck.__all__ is rendered from its docstring in the API reference."""
    import gradcheck

    page = (ROOT / "docs" / "reference" / "api.md").read_text(encoding="utf-8")
    rendered = set(re.findall(r"^::: gradcheck\.(\w+)\s*$", page, flags=re.MULTILINE))
    assert set(gradcheck.__all__) - rendered == set(), "add ::: gradcheck.NAME to reference/api.md"


def test_architecture_page_names_every_module():
    """docs/project/architecture.md has a line for every module of the package."""
    page = (ROOT / "docs" / "project" / "architecture.md").read_text(encoding="utf-8")
    listed = set(re.findall(r"^(gradcheck/\S+\.py)\s", page, flags=re.MULTILINE))
    modules = {
        str(path.relative_to(ROOT))
        for path in (ROOT / "gradcheck").rglob("*.py")
        if path.name != "__init__.py" or path.parent.name == "gradcheck"
    }
    assert modules - listed == set(), "add a line for each to docs/project/architecture.md"
    assert listed - modules == set(), "modules listed in docs/project/architecture.md are gone"


def test_architecture_page_names_every_make_target():
    page = (ROOT / "docs" / "project" / "architecture.md").read_text(encoding="utf-8")
    assert set(re.findall(r"^make ([\w-]+)", page, flags=re.MULTILINE)) == make_targets()


def make_targets() -> set[str]:
    text = (ROOT / "Makefile").read_text(encoding="utf-8")
    return set(re.findall(r"^([A-Za-z][\w-]*):", text, flags=re.MULTILINE))


def shell_lines(path: Path) -> list[tuple[int, str]]:
    """Command lines of the page's shell blocks (a ``$`` prompt is dropped)."""
    found = []
    for block in blocks(path):
        if block.info not in SHELL_INFO:
            continue
        for offset, line in enumerate(block.code.splitlines()):
            command = line.strip().removeprefix("$ ").split("#")[0].strip()
            if command:
                found.append((block.line + offset, command))
    return found


@pytest.mark.parametrize("page", PAGES, ids=page_id)
def test_shell_lines_name_existing_make_targets(page):
    targets = make_targets()
    makes = [(n, c) for n, c in shell_lines(page) if c.split()[0] == "make"]
    if page == README:
        assert makes, "README shows no make command"
    for number, command in makes:
        named = [w for w in command.split()[1:] if not w.startswith("-") and "=" not in w]
        assert named, f"{page_id(page)}:{number}: {command!r} names no target"
        missing = [w for w in named if w not in targets]
        assert not missing, (
            f"{page_id(page)}:{number}: no make target {missing} in {sorted(targets)}"
        )


def test_readme_starts_with_the_two_set_up_commands():
    """A newcomer's first lines are exactly these."""
    first = shell_lines(README)[:2]
    assert [c for _, c in first] == ["make check", "make test"]


def test_readme_relative_links_point_at_files():
    text = README.read_text(encoding="utf-8")
    links = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text)
    local = [link for link in links if "://" not in link and not link.startswith("mailto:")]
    assert local, "README links nowhere into the docs"
    missing = [link for link in local if not (ROOT / link).exists()]
    assert not missing, missing
