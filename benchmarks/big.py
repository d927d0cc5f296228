"""``make bench-big``: fast mode on a GPT-2-small-sized transformer with one planted wrong element.

Builds :data:`nets.transformer.GPT2_SMALL` (124,439,808 float32 parameters, 498 MB) on a short
seeded batch (``--width``, ``--layers``, ``--vocab`` build a smaller one for iteration), makes
one element of one weight's hand-written partial wrong, and runs
``gradcheck.check(..., mode="fast")``. Reports the loss evaluations, wall time as a multiple of
one forward, peak memory against the parameters' own bytes (tracemalloc's peak of what the
check allocates, and the process's maximum resident set), and whether the planted element was
found with its index.

The planted error is sized from what the check can resolve, never chosen to pass silently: a
calibration run (the same fast check of the whole net with the correct gradient, a dozen
evaluations, which is also the net's false-alarm check) states the tensor's sensitivity, and
the element is planted ``--times`` (3) that (``--error`` plants a fraction of the tensor's
largest ``|partial|`` instead). The report
prints the stated sensitivity next to the planted error and the result, and what the earlier
plant (0.01 of the largest partial) would have been against it.

The process caps its address space (``--memory-limit``, GiB) first, so a check that needs more
memory than the machine can spare fails here with a MemoryError, reported as such, instead of
pushing the shared machine into swap or the OOM killer.

Usage: ``python -m benchmarks.big [--steps 16] [--batch 1] [--times 3] [--out
reports/bench-big.md]``.
"""

from __future__ import annotations

import argparse
import platform
import resource
import sys
import time
import traceback
import tracemalloc
from pathlib import Path
from typing import Any

import numpy as np

import gradcheck
from benchmarks.fast import CHUNK_ALLOWANCE, Segments
from gradcheck.fast.mode import BASELINE
from gradcheck.fast.probe import PILOT_EVALUATIONS, PROBE_EVALUATIONS
from nets.transformer import GPT2_SMALL, Config, Transformer, parameter_count

TARGET_EVALUATIONS = 30
TARGET_MEMORY = 2.0  # peak over the parameters' bytes
EARLIER_ERROR = 1e-2  # the earlier plant: this fraction of the tensor's largest |partial|


def cap_memory(gib: float) -> None:
    """Cap the address space at ``gib`` GiB (never raising an existing lower cap)."""
    limit = int(gib * 2**30)
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    if soft == resource.RLIM_INFINITY or soft > limit:
        resource.setrlimit(resource.RLIMIT_AS, (limit, hard))


def max_rss_bytes() -> int:
    """The process's largest resident set so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def best_time(call, repeats: int = 3) -> float:
    """The fastest of ``repeats`` calls, in seconds."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return min(times)


class Planted:
    """The model's hand-written gradient with ``delta`` added to one element of ``tensor``.

    Writes into the gradient array the backward just returned: no copy of anything.
    """

    def __init__(self, model: Transformer, tensor: str, index: int, delta: float):
        self.model, self.tensor, self.index, self.delta = model, tensor, index, delta

    backward_peak = 0  # tracemalloc's peak until the gradient returned (0: not traced)

    def __call__(self, params: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        grads = self.model.grad(params)
        grads[self.tensor].reshape(-1)[self.index] += self.delta
        if tracemalloc.is_tracing():  # split the peak: the user's backward, then the check
            self.backward_peak = tracemalloc.get_traced_memory()[1]
            tracemalloc.reset_peak()
        return grads


def wrong_indices(result: Any) -> list[int]:
    """The flat indices the report calls wrong in one tensor, whatever fast mode keeps."""
    probe = getattr(result, "probe", None)
    proven = getattr(probe, "proven_wrong", None)
    if proven is not None:
        return sorted(int(i) for i in proven)
    wrong = np.asarray(result.statuses) == "wrong"  # over the elements the result describes
    indices = getattr(result, "indices", None)
    return (np.flatnonzero(wrong) if indices is None else np.asarray(indices)[wrong]).tolist()


def _summary(result: Any) -> str:
    """The planted tensor's element counts and what its probes did, for the record."""
    probe = getattr(result, "probe", None)
    described = probe.to_dict() if probe is not None else {}
    described.pop("probes", None)  # one dict per probe: long
    return f"status {result.status}, counts {result.counts()}; probe summary {described}"


def _stated(result: Any, delta: float) -> str:
    """What the report says it can see in the planted tensor, against the planted error."""
    probe = getattr(result, "probe", None)
    stated = (getattr(probe, "sensitivity", None) or {}).get("abs")
    if stated is None:
        return "- stated sensitivity of the planted tensor: none (no passing probe)"
    verdict = "below" if stated < abs(delta) else "ABOVE"
    return (
        f"- stated sensitivity of the planted tensor: an error of {stated:.3g} per element "
        f"(||e * max(1, |x|)||) is missed with probability <= {probe.sensitivity['miss']}: "
        f"{stated / abs(delta):.3g}x the planted error ({verdict} it)"
    )


def _phases(report: Any, tensor: str) -> str:
    """The evaluations by phase, as far as the report tells them: the detection a correct net
    costs (baseline, joint pilot, ``probes`` joint probes), the joint probes added for
    matching (when the planted tensor kept the joint probes), and the rest (the search over
    tensors, the tensor's own probes and localization, the leads measured one by one)."""
    probes = int(report.options["probes"])
    detection = BASELINE + PILOT_EVALUATIONS + PROBE_EVALUATIONS * probes
    summary = getattr(report[tensor], "probe", None)
    if summary is None or not summary.joint:
        rest = report.evaluations - detection
        return (
            f"- by phase: detection {detection} (baseline, joint pilot, {probes} joint probes); "
            f"the rest {rest} (joint probes added for matching, the search over tensors, the "
            f"tensor's own probes and localization, confirmation)"
        )
    added = PROBE_EVALUATIONS * (len(summary.probes) - probes)
    rest = report.evaluations - detection - added
    return (
        f"- by phase: detection {detection} (baseline, joint pilot, {probes} joint probes); "
        f"{added} for {added // PROBE_EVALUATIONS} joint probes added for matching; the rest "
        f"{rest} (the planted tensor kept the joint probes: its {len(summary.decoded)} lead(s) "
        f"measured one by one, and any other tensor's search)"
    )


def calibrate(model: Transformer, tensor: str, seed: int) -> tuple[dict[str, Any], int]:
    """The sensitivity fast mode states for ``tensor`` (its ``probe.sensitivity``) on the
    correct gradient, from the same fast check of the whole net as the planted run (joint
    probes over every tensor, the same seed), and the loss evaluations it took. It is also the
    net's false-alarm check: a correct net that fails here stops the benchmark."""
    report = gradcheck.check(model.loss, model.grad, model.params, mode="fast", seed=seed)
    if not report.passed:
        raise RuntimeError(f"the calibration run of the correct net failed:\n{report}")
    return dict(report[tensor].probe.sensitivity), report.evaluations


def _calibrated(sensitivity: dict[str, Any], evaluations: int, tensor: str, largest: float) -> str:
    """The calibration run's stated sensitivity, in the units the planted error is read in."""
    stated = sensitivity.get("abs")
    if stated is None:
        return "- calibration (whole net, correct gradient): no sensitivity stated"
    return (
        f"- calibration (whole net, correct gradient, {evaluations} evaluations): stated "
        f"sensitivity {stated:.3g} per element (||e * max(1, |x|)||, missed with probability "
        f"<= {sensitivity.get('miss')}) = {stated / largest:.3g}x the tensor's largest "
        f"|partial|, {sensitivity.get('relative') or float('nan'):.3g}x its median"
    )


def _earlier(stated: float | None, largest: float, scale: float) -> str:
    """What the earlier plant (``EARLIER_ERROR`` of the largest partial) is against the stated
    sensitivity: below it, fast mode may miss it with more than the stated probability."""
    earlier = EARLIER_ERROR * largest * scale
    if stated is None:
        return f"- an error of {EARLIER_ERROR:g} of the largest |partial|: no stated sensitivity"
    verdict = "below" if earlier < stated else "above"
    return (
        f"- an error of {EARLIER_ERROR:g} of the largest |partial| ({earlier:.3g}, the earlier "
        f"plant) is {stated / earlier:.3g}x {verdict} the stated sensitivity"
        + (": not resolvable by this check's tensor-wide probes" if earlier < stated else "")
    )


def _against(stated: float | None, planted: float) -> str:
    """The planted error as a multiple of the calibrated stated sensitivity."""
    if stated is None:
        return f"error {planted:.3g}, no stated sensitivity"
    return f"error {planted:.3g} = {planted / stated:.3g}x the stated sensitivity {stated:.3g}"


def terms(model: Transformer, tensor: str, seed: int) -> list[str]:
    """One tensor-wide probe of ``tensor`` on the correct gradient, its tolerance's three terms
    (:func:`gradcheck.fast.numerics.direction_tolerance`) against what they stand for,
    measured: the loss's noise by ECnoise along the probe's direction
    (:func:`gradcheck.fast.probe.direction_noise`); the truncation and the hand-written
    rounding against a float64 copy of the net at the same float32 point (``F'''`` from its
    central differences at ``h`` and ``2h``, the gradient's error ``a32 - a64`` projected on
    the probe's spans). Internals, for the record: not part of the check."""
    from dataclasses import replace

    from gradcheck.core.differences import FiniteDifferences
    from gradcheck.core.evaluation import Evaluator
    from gradcheck.core.numerics import Tolerance, evaluation_noise
    from gradcheck.core.params import ParamSet
    from gradcheck.fast.probe import Weights, direction_noise, pilot, probe, tensor_of

    params = model.params
    tol = Tolerance()
    pset = ParamSet({tensor: params[tensor]})
    evaluator = Evaluator(pset, lambda p: model.loss({**params, **p}))
    evaluator.plan(64)
    differences = FiniteDifferences(evaluator, tol)
    analytic = model.grad(params)[tensor].reshape(-1)
    evaluator.baseline()
    t = tensor_of(differences, tensor, analytic, np.dtype(np.float32), 1e-9)
    direction = pilot(differences, t, seed)
    h = direction.half_step
    record = probe(differences, direction, Weights(0, analytic.size))
    f_up, f_down, _ = record.values
    floor = float(evaluation_noise(np.array(max(abs(f_up), abs(f_down))), t.eps, tol))
    assumed = {
        "loss rounding": tol.safety * 2.0 * floor,
        "truncation": tol.safety * h**3 * direction.third / 3.0,
        "hand-written rounding": t.quantile * t.rtol * record.rounding,
    }
    sigma = direction_noise(differences, replace(direction, sigma=0.0))
    spans = np.zeros(analytic.size)
    for a, b, _, move in direction.moves(Weights(0, analytic.size), h):
        x = t.x[a:b]
        spans[a:b] = (x + move).astype(np.float64) - (x - move).astype(np.float64)
    pset.finish()
    wide = Transformer(model.config, batch=model.tokens.shape[0], steps=model.tokens.shape[1])
    wide.tokens, wide.targets = model.tokens, model.targets
    wide.params = {k: v.astype(np.float64) for k, v in params.items()}
    exact = wide.grad(wide.params)[tensor].reshape(-1)
    base = wide.params[tensor].reshape(-1).copy()
    w = spans / (2.0 * h)

    def central(s: float) -> float:
        wide.params[tensor] = (base + s * w).reshape(params[tensor].shape)
        up = float(wide.loss(wide.params))
        wide.params[tensor] = (base - s * w).reshape(params[tensor].shape)
        return (up - float(wide.loss(wide.params))) / (2.0 * s)

    slope = float(exact @ w)
    third = 6.0 * abs(central(2.0 * h) - central(h)) / (3.0 * h * h)
    d64 = 2.0 * h * central(h)
    measured = {
        "loss rounding": 6.0 * sigma,
        "truncation": abs(d64 - 2.0 * h * slope),
        "hand-written rounding": abs(float((analytic.astype(np.float64) - exact) @ spans)),
    }
    rows = [
        f"- tolerance terms of one probe of {tensor} (h = {h:.3g} along w, correct gradient), in "
        f"units of D = F(h) - F(-h); measured: noise 2 x 3 sigma (ECnoise along w, sigma "
        f"{sigma:.3g}; the float32 D off the float64 one by {abs(f_up - f_down - d64):.3g}), "
        f"truncation and rounding against a float64 copy (|F'''| {third:.3g}, the pilot's "
        f"{direction.third:.3g} with its margin)",
        "",
        "| term | assumed | measured | assumed / measured |",
        "|---|---|---|---|",
    ]
    for name, value in assumed.items():
        ratio = value / measured[name] if measured[name] > 0 else float("inf")
        rows.append(f"| {name} | {value:.3g} | {measured[name]:.3g} | {ratio:.3g}x |")
    rows += [
        f"| tolerance, against |D - A| | {record.tolerance:.3g} | {abs(record.discrepancy):.3g} | "
        f"{record.tolerance / abs(record.discrepancy):.3g}x |",
        "",
    ]
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=16, help="tokens per sequence")
    parser.add_argument("--batch", type=int, default=1, help="sequences")
    parser.add_argument("--width", type=int, default=GPT2_SMALL.width, help="model width")
    parser.add_argument("--layers", type=int, default=GPT2_SMALL.layers, help="blocks")
    parser.add_argument("--vocab", type=int, default=GPT2_SMALL.vocab, help="vocabulary")
    parser.add_argument("--tensor", default="h5.mlp.w_fc", help="where the wrong element is")
    size = parser.add_mutually_exclusive_group()
    size.add_argument(
        "--times",
        type=float,
        default=3.0,
        help="the planted partial is off by this multiple of the tensor's stated sensitivity "
        "(from a calibration run)",
    )
    size.add_argument(
        "--error",
        type=float,
        default=None,
        help="plant this fraction of the tensor's largest |partial| instead",
    )
    parser.add_argument("--seed", type=int, default=0, help="fast mode's seed")
    parser.add_argument(
        "--terms",
        action="store_true",
        help="also measure the planted tensor's tolerance terms against a float64 copy (2x memory)",
    )
    parser.add_argument("--memory-limit", type=float, default=12.0, help="address space, GiB")
    parser.add_argument("--out", default="reports/bench-big.md")
    args = parser.parse_args(argv)
    cap_memory(args.memory_limit)

    started = time.perf_counter()
    config = Config(
        vocab=args.vocab,
        context=GPT2_SMALL.context,
        width=args.width,
        heads=GPT2_SMALL.heads,
        layers=args.layers,
    )
    model = Transformer(config, batch=args.batch, steps=args.steps, dtype=np.float32)
    params = model.params
    count = sum(p.size for p in params.values())
    assert count == parameter_count(config)
    param_bytes = sum(p.nbytes for p in params.values())
    build = time.perf_counter() - started
    forward = best_time(lambda: model.loss(params))
    backward = best_time(lambda: model.grad(params), repeats=1)
    true = model.grad(params)[args.tensor].reshape(-1)
    size = true.size
    index = int(np.random.default_rng(1).integers(size))
    largest = float(np.abs(true).max())
    scale = max(1.0, abs(float(params[args.tensor].reshape(-1)[index])))  # max(1, |x|)
    calibration, calibration_evaluations = calibrate(model, args.tensor, args.seed)
    measured = terms(model, args.tensor, args.seed) if args.terms else []
    stated_before = calibration.get("abs")
    if args.error is not None:
        delta = float(args.error * largest)
        how = f"{args.error:g} of the tensor's largest |partial|"
    elif stated_before is not None:
        delta = float(args.times * stated_before / scale)
        how = f"{args.times:g}x the tensor's stated sensitivity from the calibration run"
    else:
        raise RuntimeError(f"the calibration run stated no sensitivity for {args.tensor}")
    planted_value, true_value = float(true[index] + delta), float(true[index])
    del true
    grad = Planted(model, args.tensor, index, delta)
    label = (
        f"{args.tensor}[{', '.join(map(str, np.unravel_index(index, params[args.tensor].shape)))}]"
    )
    rss_before = max_rss_bytes()

    tracemalloc.start()
    bare = 0
    try:
        model.loss(params)
        bare = tracemalloc.get_traced_memory()[1] - tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    segments = Segments()  # the check's own peak apart from the loss calls' working memory

    def phased(p: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        out = grad(p)  # records the peak until here, then resets it
        segments.check = segments.loss = segments.total = 0  # the check's own work starts here
        return out

    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    wall, error, report = float("nan"), "", None
    start = time.perf_counter()
    try:
        report = gradcheck.check(
            segments.wrap(model.loss), phased, params, mode="fast", seed=args.seed
        )
    except MemoryError as exc:
        frames = [
            f"{Path(f.filename).name}:{f.lineno} {f.name}"
            for f in traceback.extract_tb(exc.__traceback__)
            if "gradcheck" in f.filename
        ]
        error = (
            f"MemoryError under the {args.memory_limit:g} GiB cap: {exc}; "
            f"in {' <- '.join(reversed(frames[-3:]))}"
        )
    finally:
        wall = time.perf_counter() - start
        segments.outside()
        peak, own = segments.total - base, segments.check - base
        tracemalloc.stop()
    rss = max_rss_bytes()

    lines = [
        "# bench-big: fast mode on a GPT-2-small-sized transformer",
        "",
        *(
            []
            if config == GPT2_SMALL
            else [
                f"A smaller configuration: width {config.width}, {config.layers} layers, "
                f"vocabulary {config.vocab}.",
                "",
            ]
        ),
        f"{platform.machine()}, Python {platform.python_version()}, numpy {np.__version__}; "
        f"model built in {build:.1f} s.",
        "",
        f"- parameters: {count:,} float32 in {len(params)} tensors, {param_bytes / 1e6:.0f} MB",
        f"- batch {args.batch} x {args.steps} tokens; one forward {forward:.3f} s, "
        f"one backward (grad) {backward:.3f} s",
        _calibrated(calibration, calibration_evaluations, args.tensor, largest),
        f"- planted: {label} (flat {index:,} of {size:,}) off by {delta:.3g} = {how} "
        f"({delta / largest:.3g}x its largest |partial| {largest:.3g}): {planted_value:.4g} for "
        f"{true_value:.4g}",
        _earlier(stated_before, largest, scale),
        *measured,
    ]
    if report is None:
        lines += [f"- check did not finish after {wall:.1f} s: {error}"]
        found, evaluations = False, None
    else:
        wrong = {p.name: wrong_indices(p) for p in report.params if p.failed}
        found = report.failed_params == [args.tensor] and wrong.get(args.tensor) == [index]
        evaluations = report.evaluations
        lines += [
            f"- evaluations: {evaluations}; wall {wall:.1f} s = {wall / forward:.1f} forwards "
            f"({wall / (evaluations * forward):.2f}x evaluations x one forward)",
            _phases(report, args.tensor),
            f"- failing tensors: {report.failed_params}; wrong elements: "
            + ", ".join(f"{name} {idx[:5]}" for name, idx in wrong.items()),
            f"- planted element found with its index: {'yes' if found else 'NO'}",
            f"- {args.tensor}: {_summary(report[args.tensor])}",
            _stated(report[args.tensor], delta),
            f"- report options: {report.options}",
        ]
    backward = grad.backward_peak - base
    lines += [
        f"- peak memory of the check (tracemalloc, beyond what existed): until the gradient "
        f"function returned (the snapshot and the model's own backward) {backward / 1e6:.0f} MB "
        f"= {backward / param_bytes:.2f}x; after it (the check's own work, loss calls "
        f"included) {peak / 1e6:.0f} MB = {peak / param_bytes:.2f}x the parameters' bytes; "
        f"the check's own (the loss calls' working memory apart: at most {segments.loss / 1e6:.0f}"
        f" MB per call, one bare loss call {bare / 1e6:.0f} MB) {own / 1e6:.0f} MB = "
        f"{own / param_bytes:.2f}x",
        f"- max resident set: {rss_before / 1e6:.0f} MB before the check (model, one grad), "
        f"{rss / 1e6:.0f} MB after = {rss / param_bytes:.2f}x the parameters' bytes",
        "",
        "## Targets",
        "",
        f"- planted element ({_against(stated_before, delta * scale)}) found with its index: "
        + ("met" if found else "NOT met"),
        f"- planted element found in at most {TARGET_EVALUATIONS} evaluations: "
        + (
            "met"
            if found and evaluations is not None and evaluations <= TARGET_EVALUATIONS
            else "NOT met"
        ),
        f"- the check's own peak memory at most {TARGET_MEMORY:g}x the parameters' bytes "
        f"(+ {CHUNK_ALLOWANCE / 1e6:g} MB of chunk buffers + O(measured)): "
        + (
            "met"
            if report is not None and own <= TARGET_MEMORY * param_bytes + CHUNK_ALLOWANCE
            else "NOT met"
        ),
    ]
    text = "\n".join(lines) + "\n"
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(text)
    print(text)
    return 0 if report is not None else 1


if __name__ == "__main__":
    sys.exit(main())
