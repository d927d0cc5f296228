"""Curves as text (always) and as a PNG (when matplotlib is installed: the ``plot`` extra)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path

MARKERS = "*o+x#@%&"


def ascii_curves(
    series: Mapping[str, Sequence[float]],
    *,
    width: int = 64,
    height: int = 14,
    log: bool = False,
    xlabel: str = "epoch",
) -> str:
    """Draw every series on one character grid, x = position in its list, with a legend.

    Series may have different lengths (a run that crashed stops early); all share the x range
    of the longest. ``log`` puts y on a log10 scale (non-positive values are skipped). NaN and
    infinite values are skipped.
    """
    if width < 8 or height < 3:
        raise ValueError(f"ascii_curves needs width >= 8 and height >= 3, got {width}x{height}")
    if len(series) > len(MARKERS):
        raise ValueError(f"at most {len(MARKERS)} series, got {len(series)}")

    def fy(v: float) -> float | None:
        if not math.isfinite(v) or (log and v <= 0):
            return None
        return math.log10(v) if log else v

    values = [y for ys in series.values() for v in ys if (y := fy(v)) is not None]
    if not values:
        raise ValueError("ascii_curves: no finite value to draw")
    low, high = min(values), max(values)
    if high == low:
        low, high = low - 0.5, high + 0.5
    longest = max(len(ys) for ys in series.values())
    grid = [[" "] * width for _ in range(height)]
    for marker, ys in zip(MARKERS, series.values(), strict=False):
        for i, v in enumerate(ys):
            y = fy(v)
            if y is None:
                continue
            col = round(i * (width - 1) / max(longest - 1, 1))
            row = round((high - y) * (height - 1) / (high - low))
            grid[row][col] = marker

    def label(y: float) -> str:
        return f"{10**y if log else y:9.3g}"

    lines = []
    for r, cells in enumerate(grid):
        tick = label(high - r * (high - low) / (height - 1)) if r in (0, height - 1) else " " * 9
        lines.append(f"{tick} |{''.join(cells)}".rstrip())
    lines.append(" " * 10 + "+" + "-" * width)
    last = str(longest - 1)
    lines.append(" " * 11 + "0" + f" {xlabel} ".center(width - 1 - len(last)) + last)
    lines += [f"  {m} {name}" for m, name in zip(MARKERS, series, strict=False)]
    return "\n".join(lines)


def save_png(
    panels: Mapping[str, Mapping[str, Sequence[float]]],
    path: Path,
    *,
    log: bool = False,
    ylabel: str = "loss",
    xlabel: str = "epoch",
) -> Path | None:
    """Save one panel per ``{title: {series name: values}}`` side by side as a PNG.

    Returns the path, or ``None`` (nothing written) when matplotlib is not installed.
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    fig, axes = plt.subplots(1, len(panels), figsize=(6 * len(panels), 4), squeeze=False)
    for ax, (title, series) in zip(axes[0], panels.items(), strict=True):
        for name, ys in series.items():
            ax.plot(range(len(ys)), ys, label=name, marker="o" if len(ys) == 1 else None)
        if log:
            ax.set_yscale("log")
        ax.set(title=title, xlabel=xlabel, ylabel=ylabel)
        ax.legend(fontsize="small")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
