"""Mutation testing of the checker: ``python -m tools.mutants`` (``make mutants``).

Every backward function of ``nets/`` (each ``*_backward``, the network's chain rule
``Network.grad``, the asker's corrected ``partials``) gets every single-node mutant of
:mod:`tools.mutate`. Each mutant runs against the correct reference nets that call the function
(found by tracing their gradient once) and gets one verdict:

* ``killed``: gradcheck fails on some net (a wrong partial, or the gradient function raises:
  the check turns that into an error, so the user sees it either way);
* ``equivalent``: on every one of those nets the mutant's gradient equals the original's to
  rounding (``|a - b| <= RTOL max(|a|, |b|) + ATOL max|b|``) at every element where the loss is
  differentiable, and at the elements the original's check found at a kink it lies between the
  one-sided slopes (another valid subgradient). Equivalent *on these inputs*, which is all a
  check at these inputs can promise;
* ``survived``: the gradient differs and every check passed: a gap, listed with its size.

The score is killed / (killed + survived).
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from types import FunctionType

import numpy as np

from gradcheck import check
from gradcheck.errors import GradcheckError
from gradcheck.protocol import Reference
from gradcheck.report.model import Report
from tools.mutate import Mutant, applied, mutants, target_name

MODULES = ("nets.layers", "nets.norms", "nets.conv", "nets.sequence", "nets.recommended")
EXTRA = (("nets.network", "Network.grad"), ("nets.asker", "CorrectedNet.partials"))
RTOL = 1e-9  # relative difference treated as rounding (float64 sums of a few hundred terms)
ATOL = 1e-12  # ... and absolute, as a fraction of the tensor's largest partial


def default_targets() -> list[FunctionType]:
    """Every ``*_backward`` defined in :data:`MODULES`, plus :data:`EXTRA`."""
    import importlib

    found = []
    for name in MODULES:
        module = importlib.import_module(name)
        found += [
            f
            for f in vars(module).values()
            if isinstance(f, FunctionType)
            and f.__module__ == name
            and f.__name__.endswith("_backward")
        ]
    for name, qualname in EXTRA:
        obj = importlib.import_module(name)
        for part in qualname.split("."):
            obj = getattr(obj, part)
        found.append(obj)
    return found


@dataclass
class Baseline:
    """A correct reference net with its gradient and its check at the starting parameters."""

    reference: Reference
    grads: dict[str, np.ndarray]
    report: Report


@dataclass
class Outcome:
    mutant: Mutant
    verdict: str  # killed, equivalent, survived, unexercised
    detail: str
    raised: bool = False  # killed because the mutated gradient function raised


def baselines(references: dict[str, Reference]) -> dict[str, Baseline]:
    """Gradient and check of every correct reference (the ones declared to pass)."""
    out = {}
    for name, ref in references.items():
        if ref.expect_pass:
            problem = ref.build()
            grads = {k: np.asarray(v, dtype=float) for k, v in problem.grad(problem.params).items()}
            out[name] = Baseline(ref, grads, check(problem.loss, problem.grad, problem.params))
    return out


def exercised(bases: dict[str, Baseline], targets: list[FunctionType]) -> dict[str, list[str]]:
    """For each target, the correct nets whose gradient calls it (one traced run each)."""
    codes = {f.__code__: target_name(f) for f in targets}
    hits: dict[str, list[str]] = defaultdict(list)
    current = [""]

    def profile(frame, event, _arg):
        name = codes.get(frame.f_code) if event == "call" else None
        if name and current[0] not in hits[name]:
            hits[name].append(current[0])

    for name, base in bases.items():
        problem = base.reference.build()
        current[0] = name
        sys.setprofile(profile)
        try:
            problem.grad(problem.params)
        finally:
            sys.setprofile(None)
    return hits


def _difference(base: Baseline, grads) -> str | None:
    """Why ``grads`` is not equivalent to the baseline's, or None when it is (see module doc)."""
    if set(grads) != set(base.grads):
        return f"returns keys {sorted(grads)}"
    for param in base.report.params:
        ref, new = base.grads[param.name], np.asarray(grads[param.name], dtype=float)
        if new.shape != ref.shape:
            return f"{param.name} has shape {new.shape}, not {ref.shape}"
        ref, new = ref.reshape(-1), new.reshape(-1)
        with np.errstate(invalid="ignore", over="ignore"):
            close = np.abs(new - ref) <= RTOL * np.maximum(np.abs(new), np.abs(ref)) + ATOL * (
                np.abs(ref).max()
            )
        off = ~((close & np.isfinite(new)) | (new == ref))
        kink = param.statuses == "uncertain"
        low = np.fmin(param.forward, param.backward) - param.tolerance
        high = np.fmax(param.forward, param.backward) + param.tolerance
        off &= ~(kink & (new >= low) & (new <= high))
        if off.any():
            worst = int(np.argmax(np.where(off, np.abs(new - ref), -1)))
            where = "at a kink, outside the one-sided slopes" if kink[worst] else "differs"
            return (
                f"{param.label(worst)} {where}: {new[worst]:.6g} vs {ref[worst]:.6g} "
                f"(check tolerance {param.tolerance[worst]:.2g})"
            )
    return None


def _differs_at_kinks(base: Baseline, grads) -> bool:
    """Whether an otherwise equivalent gradient differs from the baseline at all."""
    return any(
        not np.array_equal(np.asarray(grads[k], dtype=float), v) for k, v in base.grads.items()
    )


def classify(func: FunctionType, mutant: Mutant, bases: list[Baseline]) -> Outcome:
    """Run one mutant against the nets that exercise it and give its verdict."""
    if not bases:
        return Outcome(mutant, "unexercised", "no correct reference net calls it")
    with applied(func, mutant), np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # mutants divide by zero and overflow, on purpose
        differing, at_kinks = [], []
        for base in bases:
            problem = base.reference.build()
            try:
                grads = problem.grad(problem.params)
            except Exception as exc:  # the check would raise the same, as a LossError
                return Outcome(
                    mutant,
                    "killed",
                    f"{base.reference.name}: grad raises {type(exc).__name__}",
                    raised=True,
                )
            why = _difference(base, grads)
            if why:
                differing.append((base, why))
            elif _differs_at_kinks(base, grads):
                at_kinks.append(base.reference.name)
        for base, _why in differing:
            problem = base.reference.build()
            try:
                report = check(problem.loss, problem.grad, problem.params)
            except GradcheckError as exc:  # e.g. a gradient of the wrong type
                return Outcome(
                    mutant, "killed", f"{base.reference.name}: {type(exc).__name__}", raised=True
                )
            if not report.passed:
                return Outcome(
                    mutant,
                    "killed",
                    f"{base.reference.name}: wrong at {', '.join(report.failed_params)}",
                )
    if differing:
        return Outcome(
            mutant, "survived", "; ".join(f"{b.reference.name}: {w}" for b, w in differing)
        )
    detail = "gradient unchanged on " + ", ".join(b.reference.name for b in bases)
    if at_kinks:
        detail += (
            f"; on {', '.join(at_kinks)} it differs only at kinks, between the one-sided "
            "slopes (another valid subgradient)"
        )
    return Outcome(mutant, "equivalent", detail)


def run(targets: list[FunctionType], references: dict[str, Reference]) -> list[Outcome]:
    """Every mutant of every target, classified.

    Raises RuntimeError if, after all mutants, some correct net's gradient is not what it was
    before them (a mutant that wrote into shared data would make every later verdict suspect).
    """
    bases = baselines(references)
    hits = exercised(bases, targets)
    outcomes = [
        classify(func, m, [bases[n] for n in hits.get(target_name(func), [])])
        for func in targets
        for m in mutants(func)
    ]
    for name, base in bases.items():
        problem = base.reference.build()
        if _difference(base, problem.grad(problem.params)) is not None:
            raise RuntimeError(f"{name}'s gradient changed while mutants ran; verdicts void")
    return outcomes


def summary(outcomes: list[Outcome], seconds: float) -> str:
    """The score, a per-target table and every survivor and equivalent mutant, as Markdown."""
    count = defaultdict(int)
    for o in outcomes:
        count[o.verdict] += 1
    relevant = count["killed"] + count["survived"]
    score = count["killed"] / relevant if relevant else 1.0
    raised = sum(o.raised for o in outcomes)
    by_verdict = relevant - raised
    lines = [
        "# Mutation testing of the checker",
        "",
        f"**Score: {count['killed']} of {relevant} non-equivalent mutants caught "
        f"({score:.1%}).** {len(outcomes)} mutants of {len({o.mutant.target for o in outcomes})} "
        f"backward functions; {count['equivalent']} equivalent on the check inputs, "
        f"{count['unexercised']} unexercised; {seconds:.0f} s.",
        "",
        f"Of the killed, {raised} made the gradient function raise (the check reports that as an "
        f"error); leaving those out, {count['killed'] - raised} of {by_verdict} mutants that "
        "return a gradient of the right type were caught by a wrong-partial verdict "
        f"({(count['killed'] - raised) / by_verdict if by_verdict else 1.0:.1%}).",
        "",
        "| function | mutants | killed | equivalent | survived |",
        "|---|---|---|---|---|",
    ]
    per = defaultdict(lambda: defaultdict(int))
    for o in outcomes:
        per[o.mutant.target][o.verdict] += 1
    for target, c in per.items():
        lines.append(
            f"| `{target}` | {sum(c.values())} | {c['killed']} | {c['equivalent']} "
            f"| {c['survived']} |"
        )
    for verdict, title in (
        ("survived", "Survivors (gaps)"),
        ("unexercised", "Unexercised"),
        ("equivalent", "Equivalent mutants"),
        ("killed", "Killed mutants"),
    ):
        chosen = [o for o in outcomes if o.verdict == verdict]
        lines += ["", f"## {title}: {len(chosen)}", ""]
        lines += [f"- `{o.mutant}`: {o.detail}" for o in chosen] or ["(none)"]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Run every mutant; exit 0 when the score reaches ``--target``."""
    # the repository's own registry: the mutants are planted in these very modules (nets.*),
    # not in the installed copy the entry point loads (gradcheck_nets.*)
    from nets import REGISTRY

    parser = argparse.ArgumentParser(
        prog="python -m tools.mutants", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--only", default="", help="only targets whose name contains this")
    parser.add_argument("--out", type=Path, default=Path("reports/mutants.md"))
    parser.add_argument("--target", type=float, default=0.95, help="score needed to exit 0")
    args = parser.parse_args(argv)
    targets = [f for f in default_targets() if args.only in target_name(f)]
    start = time.perf_counter()
    outcomes = run(targets, REGISTRY)
    text = summary(outcomes, time.perf_counter() - start)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    print(text.partition("## Equivalent mutants")[0] + f"(equivalent and killed: {args.out})")
    killed = sum(o.verdict == "killed" for o in outcomes)
    relevant = killed + sum(o.verdict == "survived" for o in outcomes)
    return 0 if not relevant or killed / relevant >= args.target else 1


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
