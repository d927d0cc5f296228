"""The functional entry points: :func:`check` and :func:`check_problem`."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import Executor
from dataclasses import fields, replace
from typing import Any, NamedTuple, cast

import numpy as np

from gradcheck.core.compare import CODE, ParamResult, analytic_array, compare, dtype_name
from gradcheck.core.differences import (
    NOISE_MARGIN,
    OWN_PILOT_MIN,
    FiniteDifferences,
    planned_evaluations,
)
from gradcheck.core.evaluation import Evaluator, check_executor
from gradcheck.core.numerics import NOISE_SIGMAS, Tolerance, coarser_dtype, machine_eps
from gradcheck.core.params import ParamSet
from gradcheck.core.spread import FAST_MOST, SPREAD_MARGIN, gradient_spread, judged_with_spread
from gradcheck.core.tree import Tree, is_tree
from gradcheck.core.widen import HOW_TO_CAST, widen_params, widened
from gradcheck.diagnosis.classify import diagnose
from gradcheck.diagnosis.nodes import NodeResult, node_plans, node_result
from gradcheck.errors import GradcheckError, InputError, LossError, StateMutationError
from gradcheck.fast.mode import choose_mode, fast_results
from gradcheck.fast.probe import FastOptions
from gradcheck.options import CheckOptions
from gradcheck.protocol import NodeTrace, Problem, as_problem
from gradcheck.report.model import Report

Loss = Callable[[Any], Any]  # loss(params): params as given (a dict, or a pytree)
Grad = Callable[[Any], Any]  # grad(params): {name: array}, or the pytree's structure
Params = Mapping[str, Any] | Sequence[Any]  # {name: leaf}, or nested dicts/lists/tuples


def check(
    loss: Loss,
    grad: Grad,
    params: Params,
    *,
    richardson: bool = False,
    tolerance: Tolerance | None = None,
    nodes: Callable[[Mapping[str, Any]], NodeTrace] | None = None,
    samples: Sequence[Problem | tuple[Loss, Grad]] = (),
    dims: Mapping[str, int] | None = None,
    progress: Callable[[int, int], None] | None = None,
    mode: str = "full",
    seed: int = 0,
    executor: Executor | None = None,
    fast: FastOptions | None = None,
    recheck_float64: bool = False,
) -> Report:
    """Compare every hand-written partial with a finite-difference one, and diagnose.

    Args:
        loss: ``loss(params) -> float``, the scalar the gradient differentiates.
        grad: ``grad(params) -> {name: array}``, the hand-written gradient, one entry per
            parameter, each shaped like its parameter (for a pytree: the same structure).
        params: ``{name: float or ndarray}`` (float32 or float64; Python floats and 0-d
            arrays for scalars), or any nesting of dicts, lists and tuples of them (a pytree:
            elements are named by path, ``weights[1][3, 2]``; see :mod:`gradcheck.core.tree`).
            They are perturbed in place one element at a time and are bitwise what they were
            when ``check`` returns or raises, whatever happens.
        richardson: refine every element with Richardson extrapolation (four more loss
            evaluations each) instead of only those whose verdict needs it.
        tolerance: the pass rule, :class:`~gradcheck.core.numerics.Tolerance` by default.
        nodes: ``nodes(params) -> NodeTrace`` exposing intermediate values and their
            hand-written gradients; each node is checked and the report names the backward
            steps that let an error in (see :mod:`gradcheck.diagnosis.nodes`).
        samples: per-sample problems (``Problem`` or ``(loss, grad)`` pairs) on the same
            parameters; each is checked on its own as well (``report.samples``).
        dims: named sizes (``{"batch": 32, "outputs": 2}``) so the diagnosis can name a
            factor or an extra axis of that size.
        progress: ``progress(done, total)`` after every loss evaluation of the parameter and
            sample checks (``total`` is the planned count; it grows as refinement and sample
            checks add evaluations). For progress bars; ``None`` costs nothing.
        mode: ``"full"`` measures every element (about ``2P`` loss evaluations). ``"fast"``
            probes every tensor at once along random directions (``4 + 2 * probes``
            evaluations in all for a correct net; a tensor the joint directions see too
            coarsely gets its own) and, where a probe fails, reads the wrong elements off the
            probes' values (bisection as the fallback) and measures them one by one; the other
            elements are ``probed`` (with a stated sensitivity) or ``unchecked``, never ``ok``
            (see :mod:`gradcheck.fast.mode`). When the full check plans at most 8x its
            evaluations, it runs instead (``report.options["mode_reason"]`` says which ran and
            why). Sample checks use the same mode; node checks are always full.
        seed: seeds the ``numpy.random.Generator`` that draws fast mode's directions.
        executor: any ``concurrent.futures.Executor`` (a process or thread pool, Dask's
            ``client.get_executor()``, ...) to evaluate the loss on; results are bitwise those
            of a serial run. A process pool needs a picklable loss that reads the parameters
            from its argument (see :mod:`gradcheck.core.evaluation`). Node checks run serially.
        fast: fast mode's knobs, :class:`~gradcheck.fast.probe.FastOptions` by default.
        recheck_float64: when anything is float32, check again in float64 (``report.recheck``):
            float32 parameters and the float32 arrays the loss and gradient close over are
            cast for the re-check and restored afterwards (see
            :mod:`gradcheck.core.widen`); what cannot be cast is named in the notes.

    Returns:
        A :class:`~gradcheck.report.model.Report`; ``report.passed`` is the verdict (of the batch
        check: node and sample checks explain it) and ``print(report)`` the diff table.

    Raises:
        InputError: parameters, loss value or gradient are not usable (the message says which
            and what was expected).
        LossError: the loss or the gradient function raised; the message says at which point.
        NondeterministicLossError, StateMutationError: the loss is not a pure function of the
            parameters, so no finite difference can be trusted.
    """
    if not callable(loss):
        raise InputError(f"loss must be callable as loss(params), got {type(loss).__name__}")
    if not callable(grad):
        hint = (
            " (a function returning (loss, grads) is checked with "
            "gradcheck.check_value_and_grad(fun, params))"
            if grad is None
            else ""
        )
        raise InputError(f"grad must be callable as grad(params), got {type(grad).__name__}{hint}")
    if nodes is not None and not callable(nodes):
        raise InputError(f"nodes must be callable as nodes(params), got {type(nodes).__name__}")
    if progress is not None and not callable(progress):
        raise InputError(
            f"progress must be callable as progress(done, total), got {type(progress).__name__}"
        )
    options = CheckOptions.build(
        mode=mode, richardson=richardson, tolerance=tolerance, seed=seed, fast=fast
    )
    samples = _samples(samples)
    if is_tree(params):  # nested dicts/lists/tuples: the engine sees {path: leaf}
        tree = Tree(params)
        loss, grad, params = tree.on_flat(loss), tree.grad_on_flat(grad), tree.leaves
        nodes, samples = tree.on_flat(nodes), [tree.sample(s) for s in samples]
    if executor is not None:
        check_executor(executor, loss)
    dims = _dims(dims)
    return _check(
        loss,
        grad,
        cast(Mapping[str, Any], params),  # anything else: ParamSet's InputError says what
        options,
        nodes=nodes,
        samples=samples,
        dims=dims,
        progress=progress,
        executor=executor,
        recheck_float64=bool(recheck_float64),
    )


def _check(
    loss: Loss,
    grad: Grad,
    params: Mapping[str, Any],
    options: CheckOptions,
    *,
    nodes=None,
    samples=(),
    dims: dict[str, int],
    progress=None,
    executor=None,
    names: list[str] | None = None,
    recheck_float64: bool = False,
    cast: list[str] | None = None,
) -> Report:
    """:func:`check` after validation. ``names`` restricts the parameter check to those
    parameters (the loss still sees all of them); ``cast`` marks the float64 re-check (what
    was cast for it)."""
    measured = _measure(loss, grad, params, options, progress, executor, names)
    notes = list(measured.notes)
    if cast is not None:
        notes.insert(0, f"float64 re-check: cast {', '.join(cast) or 'nothing'} from float32")
        if _float32(notes):
            notes.append(f"the loss still computes in float32 here: {HOW_TO_CAST}")
    done = measured.evaluations
    node_results: list[NodeResult] = []
    if nodes is not None:
        trace = _call_with_restore(nodes, params, "nodes")
        node_results = _check_nodes(trace, options)
        done += sum(
            r.total.evaluations + (r.local.evaluations if r.local is not r.total else 0)
            for r in node_results
        )
    recheck = None
    if _float32(notes) and recheck_float64:
        recheck = _recheck_float64(loss, grad, params, options, dims, executor)
        done += recheck.evaluations
    elif _float32(notes) and cast is None:
        notes.append(
            "to see past float32 rounding, re-check in float64: check(..., "
            "recheck_float64=True) or --float64 casts the parameters and the float32 arrays "
            f"the loss closes over; or {HOW_TO_CAST}"
        )
    # per sample, only what the batch check found wrong (everything when it passed)
    failing = [p.name for p in measured.results if p.failed] or None
    sample_reports = []
    for i, sample in enumerate(samples):
        sample = _as_sample(sample, i)
        if executor is not None:
            check_executor(executor, sample.loss)
        sub = _check(
            sample.loss,
            sample.grad,
            params,
            options,
            nodes=sample.nodes,
            dims=dims,
            progress=_offset(progress, done),
            executor=executor,
            names=failing,
        )
        sample_reports.append(sub)
        done += sub.evaluations
    return Report(
        params=measured.results,
        evaluations=done,
        loss=measured.loss,
        options=options.describe()
        | {"mode": measured.mode}
        | ({"mode_reason": measured.why} if measured.why else {}),
        notes=notes,
        extra_gradients=measured.extra,
        # fast mode measures a few elements: too few for whole-gradient figures or groups
        diagnosis=diagnose(measured.results, dims, nodes is not None)
        if measured.mode == "full"
        else None,
        nodes=node_results,
        samples=sample_reports,
        recheck=recheck,
    )


def _float32(notes: Sequence[str]) -> bool:
    return any(n.startswith("precision limited") for n in notes)


def _recheck_float64(loss, grad, params, options, dims, executor) -> Report:
    """The same check with float32 parameters and closed-over values cast to float64."""
    wide, cast = widen_params(params)
    with widened(loss, grad) as inputs:
        return _check(loss, grad, wide, options, dims=dims, executor=executor, cast=cast + inputs)


def check_problem(problem: Any, **options: Any) -> Report:
    """:func:`check` a :class:`~gradcheck.protocol.Problem` (or anything
    :func:`~gradcheck.protocol.as_problem` accepts), using its nodes, samples and dims."""
    problem = as_problem(problem)
    options.setdefault("nodes", problem.nodes)
    options.setdefault("samples", problem.samples)
    options.setdefault("dims", problem.dims)
    return check(problem.loss, problem.grad, problem.params, **options)


def _offset(progress: Callable[[int, int], None] | None, done: int):
    """``progress`` for a sub-check that starts after ``done`` evaluations."""
    if progress is None:
        return None
    return lambda count, total: progress(done + count, done + total)


def _as_sample(sample: Any, i: int) -> Problem:
    if isinstance(sample, Problem):
        return sample
    if isinstance(sample, tuple) and len(sample) == 2 and all(map(callable, sample)):
        return Problem(sample[0], sample[1], {})
    raise InputError(
        f"samples[{i}] must be a Problem or a (loss, grad) pair, got {type(sample).__name__}"
    )


def _keywords(options: CheckOptions) -> dict[str, Any]:
    """``options`` as :func:`check`'s keyword arguments (for node and sample checks)."""
    return {
        "mode": options.mode,
        "richardson": options.richardson,
        "tolerance": options.tolerance,
        "seed": options.seed,
        "fast": options.fast,
    }


def _samples(samples: Any) -> list[Any]:
    """Per-sample problems as a list (each is checked by :func:`_as_sample` when its turn
    comes); a count, a string or a dict is refused here rather than as a TypeError."""
    if isinstance(samples, (str, bytes, Mapping)) or not isinstance(samples, Iterable):
        raise InputError(
            "samples must be a list of Problem or (loss, grad) pairs, one per sample, got "
            f"{type(samples).__name__} {samples!r:.60}"
        )
    return list(samples)


def _dims(dims: Mapping[str, int] | None) -> dict[str, int]:
    """Named sizes for the diagnosis, validated: ``{name: positive int}``."""
    if dims is None:
        return {}
    if not isinstance(dims, Mapping):
        raise InputError(
            f"dims must be a dict of name -> size (e.g. {{'batch': 32}}), got {type(dims).__name__}"
        )
    for name, size in dims.items():
        if (
            not isinstance(name, str)
            or isinstance(size, bool)
            or not isinstance(size, (int, np.integer))
            or size < 1
        ):
            raise InputError(f"dims must map names to positive ints, got {name!r}: {size!r}")
    return {name: int(size) for name, size in dims.items()}


def _check_nodes(trace: NodeTrace, options: CheckOptions) -> list[NodeResult]:
    """The two checks of every node of ``trace`` (node checks are always full and serial)."""
    results = []
    for plan in node_plans(trace):
        keywords = _keywords(options) | {"mode": "full"}
        total = check(*plan.total, **keywords)
        local = total if plan.local is None else check(*plan.local, **keywords)
        results.append(node_result(trace, plan, total, local))
    return results


class _Measured(NamedTuple):
    """The parameter check's results, before nodes, samples and diagnosis are added."""

    results: list[ParamResult]
    evaluations: int
    loss: float
    notes: list[str]
    extra: list[str]
    mode: str  # the mode that ran
    why: str  # why, when fast mode was asked for


def _measure(
    loss: Loss,
    grad: Grad,
    params: Mapping[str, Any],
    options: CheckOptions,
    progress: Callable[[int, int], None] | None,
    executor: Executor | None,
    names: list[str] | None = None,
) -> _Measured:
    """Parameters -> evaluations -> finite differences -> one verdict per element (of the
    parameters ``names``, all by default)."""
    pset = ParamSet(params)
    names = pset.names if names is None else [n for n in pset.names if n in set(names)]
    mode, why = "full", ""
    if options.mode == "fast":  # fast mode is never worse than full: small nets get full
        mode, why = choose_mode(pset, options.fast, options.richardson, names)
    evaluator = Evaluator(pset, loss, progress=progress, executor=executor)
    full = mode == "full"
    evaluator.plan(planned_evaluations(pset, options.richardson, names) if full else 2)
    engine = FiniteDifferences(evaluator, options.tolerance, richardson=options.richardson)
    tolerance = options.tolerance
    try:
        called: list[tuple[dict[str, Any], dict[str, Any], list[str]]] = []
        # grad runs between the baseline's two evaluations: its second proves that grad left
        # what the loss reads unchanged
        f0 = evaluator.baseline(between=lambda: called.append(_call_grad(grad, pset, full)))
        [(gradients, grad_dtypes, extra)] = called
        if not full:
            digests = {name: _digest(g) for name, g in gradients.items()}
            results = fast_results(
                engine, pset, gradients, grad_dtypes, tolerance, options.fast, options.seed, names
            )
            _same_gradients(gradients, digests)
        else:
            results = _full_results(
                engine, pset, names, gradients, grad_dtypes, tolerance, executor
            )
        results, read_again = _judge_failures(
            engine, grad, pset, results, gradients, grad_dtypes, tolerance, not full
        )
        if not full and read_again:  # (the spread's last reading is at the point)
            _same_gradients(gradients, digests)
    finally:
        pset.finish()
    notes = pset.notes + engine.notes
    if len(names) < len(pset.names):
        notes.append(f"re-checked only the batch check's failing parameters: {', '.join(names)}")
    if not full and any(p.failed for p in results):
        notes.append(
            "fast mode measured only the elements it located or sampled: for the "
            "diagnosis (bug classes, ratio groups, cosine), run the full check on the "
            "failing parameters"
        )
    coarse = sorted(
        {p.dtype for p in results if machine_eps(np.dtype(p.dtype)) > 1e-10}
        | ({str(evaluator.loss_dtype)} if machine_eps(evaluator.loss_dtype) > 1e-10 else set())
    )
    if coarse:
        notes.append(
            f"precision limited: {', '.join(coarse)} (eps {machine_eps(np.dtype(coarse[0])):.1e}); "
            "steps and tolerances are scaled to it, so differences smaller than the tolerance "
            "column cannot be seen"
        )
    return _Measured(results, evaluator.evaluations, f0, notes, extra, mode, why)


# A group stays under OWN_PILOT_MIN: its members share the one small-tensor pilot, as they do
# alone. The engine makes every per-tensor choice per member (sampled refinement, the notes) or
# sends the members alone (a fourth-order main pass some would take and others not): so every
# element gets exactly the points and verdict it would get on its own.
GROUP_MAX = OWN_PILOT_MIN - 1


def _full_results(engine, pset, names, gradients, grad_dtypes, tolerance, executor) -> list:
    """Every element of the parameters ``names`` measured, one :class:`ParamResult` each.

    Small parameters (``GROUP_MAX`` elements in all at most) of one dtype and precision, with
    usable gradients, are differentiated together as one group, and the
    results split back: the same points, steps and verdicts, element for element, without a
    pass of numpy work per parameter (a net of 14 scalars otherwise spends more on that than
    on its loss; a 1,000-parameter MLP's six tensors, 0.3 ms each at every boundary, about 3%
    of its check). On an executor every parameter goes alone (workers know only real ones).
    """
    precision = {name: coarser_dtype(pset[name].dtype, grad_dtypes.get(name)) for name in names}
    fitting = {name: _fitting(gradients.get(name), pset[name].shape) for name in names}
    groups: dict[Any, list[list[str]]] = {}
    filled: dict[Any, int] = {}  # elements in each kind's last run
    if executor is None:
        for name in names:
            size = pset[name].size
            if size <= GROUP_MAX and fitting[name] is not None:
                kind = (pset[name].dtype, precision[name])
                runs = groups.setdefault(kind, [[]])
                if filled.get(kind, 0) + size > GROUP_MAX:
                    runs.append([])
                    filled[kind] = 0
                runs[-1].append(name)
                filled[kind] = filled.get(kind, 0) + size
    # a group goes where its first member would: the pilots (the first one measures the
    # noise) run in the order they run with every parameter alone
    first = {run[0]: run for runs in groups.values() for run in runs if len(run) > 1}
    done: dict[str, ParamResult] = {}
    for name in names:
        run = first.get(name)
        if run is not None:
            group = pset[pset.group(run)]
            analytic = np.concatenate([fitting[member] for member in run])
            # (fourth order paying for some members and not all: each goes alone)
            if engine.uniform_order(group.name, analytic):
                whole = compare(
                    group,
                    analytic,
                    engine.differentiate(group.name, analytic, precision[name]),
                    tolerance,
                )
                done.update(
                    zip(run, _parts(whole, group.starts, pset, gradients, run, engine), strict=True)
                )
        if name not in done:
            done[name] = compare(
                pset[name],
                gradients.get(name),
                engine.differentiate(name, fitting[name], precision[name]),
                tolerance,
            )
    return [done[name] for name in names]


def _judge_failures(
    engine, grad, pset, results, gradients, grad_dtypes, tolerance, fast
) -> tuple[list[ParamResult], bool]:
    """Every failing verdict weighed against what could explain it besides the gradient:
    the loss's noise where it failed (:func:`_check_noise`, for tensors measured whole), then
    the hand-written partials' own spread (:func:`_check_spread`). Both modes: fast mode's
    tensors measured one by one (a probe crossed a kink) and its confirmed elements get the
    full check's judgement, and a probe summary's ``proven_wrong`` follows its tensor's new
    verdict. Costs nothing on a passing check. Also says whether the gradient was called."""
    done = {result.name: result for result in results}
    names = list(done)
    precision = {n: coarser_dtype(pset[n].dtype, grad_dtypes.get(n)) for n in names}
    fitting = {n: _fitting(gradients.get(n), pset[n].shape) for n in names}
    _check_noise(engine, pset, names, done, gradients, fitting, precision, tolerance)
    judged, read_again = _check_spread(
        grad, pset, [done[n] for n in names], gradients, engine.notes, fast
    )
    out = []
    for before, after in zip(results, judged, strict=True):
        if after is not before and before.probe is not None and after.probe is None:
            after = replace(after, probe=before.probe)  # (a tensor measured again)
        if after is not before and after.probe is not None:
            wrong = tuple(int(i) for i in after.indices[after.failing])
            after = replace(after, probe=replace(after.probe, proven_wrong=wrong))
        out.append(after)
    return out, read_again


def _check_noise(engine, pset, names, done, gradients, fitting, precision, tolerance) -> None:
    """The noise behind every failing verdict, measured where it failed (in place, in
    ``done``), and behind the kinks of a tensor with no wrong element (see ``doubted``). A
    pilot measures the loss's noise along a few elements; the rounding a finite
    difference sees depends on which terms move (``sum(a**2) + 1e4 sum(sin(v))``: a sum over
    ``v`` that cancels to ~1e-9 carries ~1e-10 of rounding when ``v`` moves and none when
    ``a`` does), so a pilot whose table moved ``a`` makes ``v``'s correct partials fail.

    Per pilot, up to ``NOISE_CHECKS`` of the elements its tensors' verdicts call wrong get a
    table of their own (six calls each). Where none finds ``NOISE_MARGIN`` times the noise
    the verdicts assumed, they stand (a real error: six calls a table, more where a
    table needs another spacing). Where one does, the noise
    differs from tensor to tensor: each failing tensor gets up to ``NOISE_CHECKS`` tables of
    its own, and one whose own tables find it is measured again, alone, with that noise
    (:meth:`~gradcheck.core.differences.FiniteDifferences.remeasure`) and judged on that; the
    others keep the noise they were measured with (their stated sensitivity holds). Done after
    every tensor, so it is the same whichever way they were grouped. Costs nothing on a
    check with no element wrong or at a kink that isolation did not clear."""
    wrong, uncertain = CODE["wrong"], CODE["uncertain"]

    def failing(name: str) -> list[tuple[str, int]]:
        return [(name, int(i)) for i in np.flatnonzero(done[name].codes == wrong)]

    def doubted(name: str) -> list[tuple[str, int]]:
        """The tensor's wrong elements; where it has none, its elements at kinks that
        isolation did not clear: a loss's rounding above the noise assumed reads as central
        values that converge at no order, a kink, and isolation then takes its steps into
        the rounding, whose one-sided slopes span anything (a linear layer's error 3x its
        stated sensitivity passed as a kink). A kink isolated at the point is the loss's."""
        unisolated = engine.unisolated.get(name, set())
        return failing(name) or [
            (name, int(i))
            for i in np.flatnonzero(done[name].codes == uncertain)
            if int(i) in unisolated
        ]

    scopes: dict[str, list[str]] = {}  # the pilot's key -> its tensors with doubted elements
    for name in names:
        result = done[name]
        if result.elements is None and doubted(name):
            key = "" if pset[name].size < OWN_PILOT_MIN else name  # "": the shared pilot
            scopes.setdefault(key, []).append(name)

    for tensors in scopes.values():
        assumed = engine.assumed_noise(tensors[0], done[tensors[0]].noise)
        elements = [element for name in tensors for element in doubted(name)]
        anywhere = engine.noise_at(elements, assumed)
        if not engine.assumed_noise(tensors[0], anywhere) > NOISE_MARGIN * assumed:
            judged = [name for name in tensors if failing(name)]
            _check_where_read(engine, pset, judged, done, gradients, fitting, precision, tolerance)
            continue
        for name in tensors:
            local = engine.noise_at(doubted(name), assumed)
            why = engine.why_noisier(doubted(name))
            where = "its verdict failed" if failing(name) else "it read kinks"
            ratio = engine.assumed_noise(name, local) / assumed
            if not ratio > NOISE_MARGIN:
                continue
            done[name] = compare(
                pset[name],
                gradients.get(name),
                engine.remeasure(name, fitting[name], precision[name], local),
                tolerance,
            )
            engine.notes.append(
                f"{name}: the noise measured where {where} ({local:.2g}) is "
                f"{ratio:.3g}x what the verdict assumed ({why}): "
                "measured again with it"
            )


def _check_where_read(engine, pset, tensors, done, gradients, fitting, precision, tolerance):
    """The noise at the points failing verdicts read, where the loss there was far larger
    than at the start (:meth:`~gradcheck.core.differences.FiniteDifferences.noise_where_read`:
    an exact fit, whose residuals' rounding grows with the step). A tensor whose noise there is
    ``NOISE_MARGIN`` times what its verdict assumed is judged again at the same steps with
    that noise (``same_steps``: at other steps the noise would be another). Costs nothing
    where the loss read is about its size at the start (a real error on an ordinary net)."""
    wrong = CODE["wrong"]
    for name in tensors:
        result = done[name]
        where = np.flatnonzero(result.codes == wrong)
        # the failing partial hardest to swamp: where its noise does not, no other's does
        with np.errstate(invalid="ignore", over="ignore"):
            hardest = int(where[np.argmax(np.abs(result.numeric[where]) * result.step[where])])
        local = engine.noise_where_read(name, hardest)
        assumed = engine.assumed_noise(name, result.noise)
        ratio = engine.assumed_noise(name, local) / assumed
        # only where every failing numeric partial is within what that noise could make of it
        # (x + h and x - h each off by NOISE_SIGMAS of it, with the verdicts' safety): a
        # partial it does not swamp was resolved, and the noise at x judged it (a
        # least-squares fit's read points are 50x noisier than x, yet its numeric partials
        # agree with the exact ones to 1e-14)
        with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
            reach = tolerance.safety * NOISE_SIGMAS * local / result.step[where]
            swamped = np.abs(result.numeric[where]) <= reach
        if not (ratio > NOISE_MARGIN and swamped.all()):
            continue
        done[name] = compare(
            pset[name],
            gradients.get(name),
            engine.remeasure(name, fitting[name], precision[name], local, same_steps=True),
            tolerance,
        )
        engine.notes.append(
            f"{name}: the noise measured at the points its verdict read ({local:.2g}), where the "
            f"loss is far larger than at the start, is {ratio:.3g}x what the verdict assumed: "
            "judged again at the same steps with it"
        )


def _check_spread(
    grad, pset, results, gradients, notes, fast=False
) -> tuple[list[ParamResult], bool]:
    """The failing verdicts judged again with the hand-written partials' own spread
    (:mod:`gradcheck.core.spread`): measured only when some element is still ``wrong`` after
    the noise was measured where it failed; a tensor changes only where the spread explains
    one of its wrong elements. Costs ``SAMPLES + 1`` gradient calls, no loss evaluation. Fast
    mode measures it on nets of at most ``FAST_MOST`` parameters. Also says whether the
    gradient was called."""
    wrong = CODE["wrong"]
    failing = {r.name for r in results if r.analytic is not None and (r.codes == wrong).any()}
    if not failing:
        return results, False
    size = sum(pset[name].size for name in pset.names)
    if fast and size > FAST_MOST:
        notes.append(
            "the hand-written partials' own rounding was not measured: fast mode on "
            f"{size:,} parameters (a second gradient would break its memory bound; the full "
            "check measures it)"
        )
        return results, False
    # (only the failing tensors' gradients are copied and compared: no other result changes)
    spread, why = gradient_spread(grad, pset, {n: gradients.get(n) for n in failing})
    if not spread:
        notes.append(f"the hand-written partials' own rounding was not measured: {why}")
        return results, True
    out = []
    for result in results:
        if result.name in spread:
            judged = judged_with_spread(result, spread[result.name])
            if judged is not result:
                cleared = result.n_wrong - judged.n_wrong
                notes.append(
                    f"{result.name}: {cleared} partial(s) differ from the numeric ones by no "
                    f"more than {SPREAD_MARGIN:g}x what the hand-written partials move by when "
                    f"every parameter moves by one ulp (up to {spread[result.name].max():.2g}): "
                    "their own rounding, as where a close fit's residuals cancel; judged with it"
                )
            result = judged
        out.append(result)
    return out, True


_RESULT_FIELDS = tuple(f.name for f in fields(ParamResult) if f.init)  # what a result is made of


def _parts(
    whole: ParamResult,
    starts: Sequence[int],
    pset: ParamSet,
    gradients: Mapping[str, np.ndarray],
    run: list[str],
    engine: FiniteDifferences,
) -> list[ParamResult]:
    """Each member's result out of its group's: the per-element arrays sliced at ``starts``,
    the member's own name, shape, dtype and gradient, and its own noise where it was measured
    apart (``engine.raised_noise``); everything else the group's."""
    shared = {name: getattr(whole, name) for name in _RESULT_FIELDS}
    arrays = [  # the per-element fields, sliced for each member
        name
        for name, value in shared.items()
        if name != "raw_grad" and isinstance(value, np.ndarray)
    ]
    out = []
    for name, start, stop in zip(run, starts, starts[1:], strict=False):
        param, grad = pset[name], gradients[name]
        # the full check's gradients are its own copies (_call_grad): frozen in place, no view
        grad.flags.writeable = False
        own = {field: shared[field][start:stop] for field in arrays}
        own |= {
            "name": name,
            "shape": param.shape,
            "dtype": dtype_name(param.dtype),
            "grad_shape": tuple(grad.shape),
            "raw_grad": grad,
            "noise": engine.raised_noise.get(name, whole.noise),
        }
        out.append(ParamResult.of_read_only(shared | own))
    return out


def _fitting(grad: Any, shape: tuple[int, ...]):
    """The flat analytic partials when they fit the parameter, else ``None``."""
    if grad is None or grad.shape != shape:
        return None
    return grad.reshape(-1)


def _usable_as_is(value: Any, pset: ParamSet) -> bool:
    """A gradient fast mode can read without a copy: a plain float32/float64 C-contiguous
    array that shares no memory with a parameter or its snapshot."""
    if type(value) is not np.ndarray or value.dtype not in (np.float32, np.float64):
        return False
    if not value.flags.c_contiguous:
        return False
    return not any(
        np.may_share_memory(value, array)
        for p in pset.params.values()
        for array in (p.array, p.snapshot)
    )


def _digest(value: Any) -> tuple[int, int] | None:
    """A checksum of a gradient array kept without a copy (no copy, no P-sized temporary): the
    wrapping sum and the exclusive or of its words. Any change of one word changes both; a
    change that kept both would take two or more words changed in concert. Three times
    cheaper than zlib's crc32 (0.7 against 2 ms per 8 MB), read twice a check."""
    if not isinstance(value, np.ndarray) or not value.flags.c_contiguous:
        return None
    raw = value.reshape(-1).view(np.uint8)
    word = next(
        w for w in (np.uint64, np.uint32, np.uint16, np.uint8) if raw.size % w().nbytes == 0
    )
    words = raw.view(word)
    return int(words.sum(dtype=np.uint64)), int(np.bitwise_xor.reduce(words))


def _same_gradients(
    gradients: Mapping[str, Any], digests: Mapping[str, tuple[int, int] | None]
) -> None:
    """Refuse a check during which the gradient arrays changed (a loss that writes into the
    buffers its gradient function returned): the verdicts compared them with a moving target."""
    moved = [n for n, g in gradients.items() if _digest(g) != digests.get(n)]
    if moved:
        raise StateMutationError(
            f"the gradient array(s) of {', '.join(map(repr, moved))} changed while the loss was "
            "being evaluated: the loss writes into the buffers grad returned; return fresh "
            "arrays (or copies) from grad"
        )


def _call_user(function: Callable, pset: ParamSet, what: str) -> Any:
    """Call a user function at the starting parameters; it must neither raise nor change them."""
    try:
        result = function(pset.view)
    except (KeyboardInterrupt, SystemExit, MemoryError, GradcheckError):
        raise  # raised by an adapter wrapping the user's function: its message says what failed
    except Exception as exc:
        raise LossError(
            f"{what} raised {type(exc).__name__}: {exc} at the starting parameters"
        ) from exc
    changed = pset.changed()
    if changed:
        raise StateMutationError(
            f"calling {what} changed parameter(s) {', '.join(map(repr, changed))}; it must not "
            "update the parameters (is it a training step? see the in-place update adapter)"
        )
    return result


def _call_with_restore(function: Callable, params: Mapping[str, Any], what: str) -> Any:
    """:func:`_call_user` on a fresh view of ``params``, restored bitwise afterwards."""
    pset = ParamSet(params)
    try:
        return _call_user(function, pset, what)
    finally:
        pset.finish()


def _call_grad(
    grad: Grad, pset: ParamSet, copy: bool = True
) -> tuple[dict[str, Any], dict[str, Any], list[str]]:
    """The hand-written gradients as float64 copies, the dtype each came in, and the names
    that are no parameter (extra gradients: reported by name, whatever they hold).

    ``copy=False`` (fast mode) keeps a float32 or float64 C-contiguous gradient as it came:
    a float64 copy would double the gradient's memory (quadruple a float32 one's), the most a
    fast check holds besides the snapshot. It is still copied when it may share memory with a
    parameter (a perturbation would move it), and :func:`_same_gradients` proves afterwards
    that nothing wrote into it."""
    raw = _call_user(grad, pset, "grad")
    if not isinstance(raw, Mapping):
        raise InputError(
            f"grad must return a dict name -> array (one entry per parameter), got "
            f"{type(raw).__name__}"
        )
    ours = {name: value for name, value in raw.items() if name in pset.params}
    # copy now: a gradient function may return views of buffers it reuses
    gradients = {
        name: value if not copy and _usable_as_is(value, pset) else analytic_array(str(name), value)
        for name, value in ours.items()
    }
    dtypes = {name: getattr(value, "dtype", None) for name, value in ours.items()}
    return gradients, dtypes, [str(k) for k in raw if k not in pset.params]
