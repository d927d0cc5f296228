"""Checks running at once, and SIGTERM mid-check (issue 12 items 5 and 11).

Two threads checking the same arrays each saw the other's perturbations: in 5 of 150 rounds a
parameter stayed perturbed and 7 of 1,020 checks FAILED a correct gradient. A check now claims
its arrays' memory before it snapshots them; an overlapping check is refused. SIGTERM while a
``np.memmap`` parameter had an element moved left the file changed; the parameters are now
restored before the process dies of the signal.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import numpy as np
import pytest

import gradcheck
from gradcheck import InputError
from tests.helpers import smooth
from tests.helpers.snapshot import assert_unchanged, snapshot

WAIT = 60  # seconds: only a hung test ever waits this long


def _inside_a_running_check(params, then):
    """Run a check of ``params`` in a thread, call ``then()`` while its loss is running (an
    element moved), and return the thread's report (or exception)."""
    inside, done = threading.Event(), threading.Event()
    outcome = {}

    def loss(p):
        if not inside.is_set():
            calls = outcome.setdefault("calls", 0) + 1
            outcome["calls"] = calls
            if calls == 5:  # past the baseline: an element is moved now
                inside.set()
                assert done.wait(WAIT)
        return smooth.loss(p)

    def run():
        try:
            outcome["report"] = gradcheck.check(loss, smooth.grad, params)
        except BaseException as exc:
            outcome["error"] = exc

    thread = threading.Thread(target=run, name="first-check")
    thread.start()
    try:
        assert inside.wait(WAIT)
        then()
    finally:
        done.set()
        thread.join(WAIT)
    assert "error" not in outcome, outcome.get("error")
    return outcome["report"]


def _params():
    return {"w": np.array([0.5, -1.25, 2.0, 0.75]), "b": 0.25}


@pytest.mark.parametrize(
    ("second", "names"),
    [
        (lambda p: p, "'w' shares memory with parameter 'w'"),
        (lambda p: {"v": p["w"][1:3]}, "'v' shares memory with parameter 'w'"),
        (lambda p: {"v": _readonly(p["w"][::2])}, "'v' shares memory with parameter 'w'"),
    ],
    ids=["same-arrays", "a-view", "a-read-only-view"],
)
def test_a_check_on_arrays_another_check_is_perturbing_is_refused(second, names):
    params = _params()
    snap = snapshot(params)
    refused = []

    def check_again():
        with pytest.raises(InputError, match=rf"{names} of a check running in thread "):
            gradcheck.check(smooth.loss, smooth.grad, second(params))
        refused.append(True)

    report = _inside_a_running_check(params, check_again)
    assert refused
    assert report.passed, report.to_text()
    assert_unchanged(snap)


def test_a_check_on_a_copy_runs_alongside():
    params = _params()
    copies = []

    def check_copy():
        copy = {"w": params["w"].copy(), "b": params["b"]}
        copies.append(gradcheck.check(smooth.loss, smooth.grad, copy))

    report = _inside_a_running_check(params, check_copy)
    assert report.passed
    assert copies[0].passed


def test_the_arrays_are_free_again_after_a_check_ends_in_any_way():
    params = _params()
    snap = snapshot(params)

    def raises(p):
        raise ValueError("boom")

    def interrupts(p):
        raise KeyboardInterrupt

    with pytest.raises(gradcheck.LossError):
        gradcheck.check(raises, smooth.grad, params)
    with pytest.raises(KeyboardInterrupt):
        gradcheck.check(interrupts, smooth.grad, params)
    with pytest.raises(InputError):
        gradcheck.check(smooth.loss, smooth.grad, {**params, "m": np.ma.array([1.0])})
    assert gradcheck.check(smooth.loss, smooth.grad, params).passed
    assert_unchanged(snap)


def test_threads_checking_one_net_never_fail_a_correct_gradient_nor_lose_a_value():
    params = _params()
    snap = snapshot(params)
    outcomes = []

    def worker():
        for _ in range(15):
            try:
                outcomes.append(gradcheck.check(smooth.loss, smooth.grad, params).passed)
            except InputError as exc:
                outcomes.append("refused" if "shares memory" in str(exc) else str(exc))

    threads = [threading.Thread(target=worker) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(WAIT)
    assert len(outcomes) == 45
    assert set(outcomes) <= {True, "refused"}
    assert_unchanged(snap)


def _readonly(array):
    array.flags.writeable = False
    return array


# --- SIGTERM --------------------------------------------------------------------------------

CHILD = """
import signal, sys
import numpy as np
import gradcheck

mm = np.memmap(sys.argv[1], dtype=np.float64, mode="r+", shape=(6,))
if sys.argv[2] == "exit-3":  # the program's own handler, which the check must chain to
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(3))
calls = [0]

def loss(p):
    calls[0] += 1
    if calls[0] == 7:  # an element of the memmap is moved now
        print("perturbed", flush=True)
        sys.stdin.readline()  # blocks until the parent is done (it sends SIGTERM first)
    return float(np.sum(np.sin(p["w"])))

gradcheck.check(loss, lambda p: {"w": np.cos(p["w"])}, {"w": mm})
print("finished", flush=True)
"""


@pytest.mark.skipif(sys.platform == "win32", reason="SIGTERM semantics are POSIX")
@pytest.mark.parametrize(
    ("previous", "signum", "status"),
    [
        ("default", signal.SIGTERM, -signal.SIGTERM),
        ("exit-3", signal.SIGTERM, 3),
        ("default", getattr(signal, "SIGHUP", signal.SIGTERM), -getattr(signal, "SIGHUP", 15)),
    ],
    ids=["default", "chain", "sighup"],
)
def test_sigterm_mid_check_restores_a_memmap_file(tmp_path, previous, signum, status):
    path = tmp_path / "weights.bin"
    original = np.array([0.5, -1.0, 2.0, 1e-3, -0.0, 3.5])
    original.tofile(path)
    before = path.read_bytes()
    script = tmp_path / "child.py"
    script.write_text(textwrap.dedent(CHILD))
    # the child imports the gradcheck under test, wherever it is
    env = {**os.environ, "PYTHONPATH": str(Path(gradcheck.__file__).parents[1])}
    child = subprocess.Popen(
        [sys.executable, str(script), str(path), previous],
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout.readline() == "perturbed\n"
        assert path.read_bytes() != before  # the memmap's file has an element moved
        child.send_signal(signum)
        child.wait(WAIT)
    finally:
        if child.poll() is None:
            child.kill()
        child.communicate()
    assert child.returncode == status  # -15: killed by SIGTERM (143 in a shell), -1: SIGHUP
    assert path.read_bytes() == before


def test_the_sigterm_handler_is_there_only_during_a_check_and_chains():
    seen = []

    def mine(signum, frame):
        seen.append(("mine", signum))

    previous = signal.signal(signal.SIGTERM, mine)
    try:

        def loss(p):
            if not seen:
                seen.append(("during", signal.getsignal(signal.SIGTERM)))
                os.kill(os.getpid(), signal.SIGTERM)  # handed on to mine; the check goes on
            return smooth.loss(p)

        params = _params()
        snap = snapshot(params)
        report = gradcheck.check(loss, smooth.grad, params)
        assert report.passed
        assert_unchanged(snap)
        assert signal.getsignal(signal.SIGTERM) is mine
        assert seen[0][1] is not mine
        assert seen[1] == ("mine", signal.SIGTERM)
    finally:
        signal.signal(signal.SIGTERM, previous)


def test_an_ignored_sigterm_stays_ignored_and_other_threads_install_nothing():
    previous = signal.signal(signal.SIGTERM, signal.SIG_IGN)
    try:
        seen = []

        def loss(p):
            seen.append(signal.getsignal(signal.SIGTERM))
            return smooth.loss(p)

        gradcheck.check(loss, smooth.grad, _params())
        assert set(seen) == {signal.SIG_IGN}
    finally:
        signal.signal(signal.SIGTERM, previous)
    result = {}
    thread = threading.Thread(
        target=lambda: result.setdefault("r", gradcheck.check(smooth.loss, smooth.grad, _params()))
    )
    thread.start()
    thread.join(WAIT)
    assert result["r"].passed
