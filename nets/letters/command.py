"""``python -m nets.letters``: the O/X letters end to end, checked and trained, as text.

Prints the letters, the verdict of gradcheck on the convnet and on the asker's three rule sets,
the training curves (ASCII; also a PNG in ``--out`` when matplotlib is installed) and a sweep of
learning rates and seeds for the asker's architecture; writes the same text to
``<out>/letters.md``. Exit 0 when the convnet reaches 100% accuracy, 1 otherwise.
"""

from __future__ import annotations

import argparse
import textwrap
from pathlib import Path

import numpy as np

from gradcheck import check

from .. import asker
from ..plot import ascii_curves, save_png
from . import (
    SHIFTS,
    asker_features,
    convnet,
    init_convnet,
    letters_dataset,
    render,
    train_asker,
    train_convnet,
)

SWEEP_RATES = (0.1, 1.0, 5.0)  # learning rates of the asker-architecture sweep
ASKER_RULES = (asker.LiteralNet, asker.MeantNet, asker.CorrectedNet)


def _verdict(report) -> str:
    if report.passed:
        partials = sum(p.size for p in report.params)
        return f"passed: all {partials} partials agree ({report.evaluations} loss evaluations)"
    failed = [p for p in report.params if p.failed]
    kinds = "/".join(sorted({p.status for p in failed}))
    return (
        f"{kinds} at {len(failed)} of {len(report.params)} parameters: "
        f"{', '.join(p.name for p in failed)}"
    )


def checks(images, labels, filters=1, seed=0) -> list[str]:
    """Check the convnet and the asker's three rule sets on the letters; one line each."""
    features, onehot = asker_features(images), np.eye(2)[labels]
    lines = []
    problem = convnet(images, labels).problem(init_convnet(filters, seed))
    report = check(problem.loss, problem.grad, problem.params)
    lines.append(f"  {'convnet:':<21} {_verdict(report)}")
    for rules in ASKER_RULES:
        problem = asker.problem(rules, data=features, labels=onehot, seed=seed)
        report = check(problem.loss, problem.grad, problem.params)
        cos = None if report.diagnosis is None else report.diagnosis.cosine
        extra = "" if cos is None or report.passed else f"; cosine with the true gradient {cos:.3f}"
        lines.append(f"  {rules.__name__ + ' rules:':<21} {_verdict(report)}{extra}")
    return lines


def sweep(features, labels, epochs: int, seeds: int) -> tuple[list[str], dict[type, int]]:
    """Runs reaching 100% per learning rate, for the meant and the corrected rules."""
    rules_set = ASKER_RULES[1:]  # LiteralNet crashes whatever the rate
    lines = ["  lr      " + "".join(f"{r.__name__:>14}" for r in rules_set)]
    reached = dict.fromkeys(rules_set, 0)
    for lr in SWEEP_RATES:
        cells = []
        for rules in rules_set:
            hits = sum(
                train_asker(rules, features, labels, epochs=epochs, lr=lr, seed=s).final_accuracy
                == 1.0
                for s in range(seeds)
            )
            reached[rules] += hits
            cells.append(f"{hits}/{seeds}")
        lines.append(f"  {lr:<8g}" + "".join(f"{c:>14}" for c in cells))
    return lines, reached


def _summary(conv_run, literal, reached, total) -> list[str]:
    perfect = next((i for i, a in enumerate(conv_run.accuracies) if a == 1.0), None)
    text = (
        "In short: the convnet "
        + (f"reached 100% at epoch {perfect}" if perfect is not None else "did NOT reach 100%")
        + ". The asker's rules as posted "
        + (f"crashed ({literal.crash})" if literal.crash else "did not crash")
        + f". The rules as meant reached 100% in {reached[asker.MeantNet]} of {total} sweep runs,"
        f" the corrected rules in {reached[asker.CorrectedNet]} of {total}: the meant rules are "
        "wrong in the partials the check names above, but where their gradient still points "
        "downhill they train anyway, so a loss curve alone does not reveal the bug."
    )
    return textwrap.wrap(text, width=96)


def main(argv: list[str] | None = None) -> int:
    """Run the letters end to end; exit 0 when the convnet reaches 100% (1 otherwise)."""
    parser = argparse.ArgumentParser(
        prog="python -m nets.letters", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--epochs", type=int, default=150, help="epochs of every run")
    parser.add_argument("--lr", type=float, default=0.5, help="convnet learning rate")
    parser.add_argument("--asker-lr", type=float, default=1.0, help="asker nets' learning rate")
    parser.add_argument("--seeds", type=int, default=4, help="seeds per sweep cell")
    parser.add_argument("--out", type=Path, default=Path("reports"), help="letters.md and PNG")
    args = parser.parse_args(argv)

    images, labels = letters_dataset()
    out = [
        f"O/X letters: {len(images)} images of 6x6 ({len(SHIFTS)} shifts of each letter, "
        f"then noisy copies); label 0 = O, 1 = X",
        "",
    ]
    samples = [images[0, 0], images[len(SHIFTS), 0], images[2 * len(SHIFTS) + 1, 0]]
    for row in zip(*(render(s).split("\n") for s in samples), strict=True):
        out.append("  " + "   ".join(f"|{r}|" for r in row))
    out += ["", "Gradients checked by gradcheck (at the starting parameters):"]
    out += checks(images, labels)

    features = asker_features(images)
    conv_run = train_convnet(images, labels, epochs=args.epochs, lr=args.lr, filters=1)
    asker_runs = [
        train_asker(r, features, labels, epochs=args.epochs, lr=args.asker_lr) for r in ASKER_RULES
    ]
    drawn_last = sorted(asker_runs, key=lambda r: bool(r.crash))  # a crashed run's one point
    out += [
        "",
        f"Training, {args.epochs} epochs. Convnet: full-batch descent, lr {args.lr}, "
        "cross-entropy:",
        ascii_curves({conv_run.name: conv_run.losses}, log=True),
        "",
        f"The asker's 4-2-2 net on the fixed-filter features, per-sample SGD, lr "
        f"{args.asker_lr}, MSE on the softmax:",
        ascii_curves({r.name: r.losses for r in drawn_last}),
        "",
    ]
    for run in [conv_run, *asker_runs]:
        crash = f"  CRASHED at {run.crash}" if run.crash else ""
        out.append(
            f"  {run.name:<52} loss {run.losses[-1]:.4f}  accuracy {run.final_accuracy:6.1%}{crash}"
        )

    lines, reached = sweep(features, labels, args.epochs, args.seeds)
    out += ["", f"Sweep, asker's architecture: runs reaching 100% of {args.seeds} seeds", *lines]
    out += ["", *_summary(conv_run, asker_runs[0], reached, len(SWEEP_RATES) * args.seeds)]

    args.out.mkdir(parents=True, exist_ok=True)
    png = save_png(
        {
            "convnet, cross-entropy": {conv_run.name: conv_run.losses},
            "asker's 4-2-2 net, MSE": {r.name: r.losses for r in asker_runs},
        },
        args.out / "letters-training.png",
    )
    out += ["", f"PNG: {png}" if png else "PNG: not written (pip install '.[plot]' for matplotlib)"]
    text = "\n".join(out)
    print(text)
    (args.out / "letters.md").write_text(f"# O/X letters end to end\n\n```\n{text}\n```\n")
    return 0 if conv_run.final_accuracy == 1.0 else 1
