"""The user's parameters: validated, perturbed one element at a time, always restored bitwise.

The loss is called with a dict built here (``ParamSet.view``). Writable float arrays in it are
the user's own arrays, perturbed in place so that code reading them through closures or
attributes sees the perturbation too; Python floats and read-only arrays are replaced in the
view instead (the user's objects are never written). Every write is undone right after the
evaluation that needed it, and :meth:`ParamSet.restore_all` copies the snapshot back bit for bit
on every way out (``finally``), KeyboardInterrupt included.
"""

from __future__ import annotations

import itertools
import math
import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from numbers import Real
from typing import Any

import numpy as np

from gradcheck.core import running
from gradcheck.errors import InputError, StateMutationError

SUPPORTED_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))
_SNAPSHOT = object()  # written to a scalar parameter: put back what the loss saw first
# A group's points go member by member, through each member's own writer, when they come in runs
# of at least this many on average (ParamSet.runs): the group writer's per-element lookups and
# snapshot test cost about 0.5 us a point, a run's own setup a few us.
RUN_MIN = 16
COMPARE_BYTES = 1 << 20  # bytes compared at once by same_bits (no copy of a whole array)


class Fill:
    """A bulk point whose values are written in place: ``fill(out)`` writes them into ``out``,
    the parameter's own slice, so a point that moves a whole tensor needs no buffer of the
    tensor's size (fast mode's probes). :meth:`materialise` makes the buffer where writing in
    place is not possible (a scalar, an array that is not C-contiguous, an executor's worker).

    ``follow(out)``, when given, writes the same values into an ``out`` that holds the point
    evaluated just before over the same slice (its restore skipped, see
    :class:`gradcheck.core.evaluation.Evaluator`): a probe's second point is then derived from
    its first in place instead of computed from scratch. It must write exactly what ``fill``
    writes.
    """

    def __init__(
        self,
        write: Callable[[np.ndarray], None],
        size: int,
        dtype: np.dtype,
        follow: Callable[[np.ndarray], None] | None = None,
    ):
        self.write, self.size, self.dtype = write, int(size), np.dtype(dtype)
        self.follow = follow

    def __call__(self, out: np.ndarray) -> None:
        self.write(out)

    def materialise(self) -> np.ndarray:
        out = np.empty(self.size, dtype=self.dtype)
        self.write(out)
        return out


class Following:
    """A :class:`Fill` with a ``follow``, written where the parameter still holds the point
    before it: :meth:`ParamSet.writer` calls ``follow`` when it writes in place, and writes the
    whole point otherwise."""

    def __init__(self, fill: Fill):
        if fill.follow is None:
            raise ValueError("a Following point needs a Fill with a follow")
        self.fill: Fill = fill
        self.follow: Callable[[np.ndarray], None] = fill.follow


def _values(values: Any) -> Any:
    """What to write for ``values``: a :class:`Fill` becomes its buffer."""
    if isinstance(values, Following):
        values = values.fill
    return values.materialise() if isinstance(values, Fill) else values


def same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    """Whether two arrays of one dtype and shape hold the same bits, compared a block of
    ``COMPARE_BYTES`` at a time when they are larger (``tobytes()`` would copy both whole: 2x
    the parameter's memory at every check of a big tensor)."""
    a, b = np.asarray(a), np.asarray(b)
    if a.dtype != b.dtype or a.shape != b.shape:
        return False
    # up to one block, or not contiguous: the bytes compared whole (a small copy, and one
    # memcmp instead of a pass of numpy calls per block: the full check asks after every tensor)
    if a.nbytes <= COMPARE_BYTES or not (a.flags.c_contiguous and b.flags.c_contiguous):
        return a.tobytes() == b.tobytes()
    word = _widest_word(a.nbytes)
    left, right = a.reshape(-1).view(word), b.reshape(-1).view(word)
    step = COMPARE_BYTES // word.itemsize
    return all(
        np.array_equal(left[i : i + step], right[i : i + step]) for i in range(0, left.size, step)
    )


def _widest_word(nbytes: int) -> np.dtype:
    """The widest unsigned integer whose size divides ``nbytes``: bits compared 8 bytes at a
    time instead of one (a mask of an eighth of the size, a pass an eighth as long)."""
    for word in (np.uint64, np.uint32, np.uint16):
        if nbytes % np.dtype(word).itemsize == 0:
            return np.dtype(word)
    return np.dtype(np.uint8)


def element_label(name: str, shape: tuple[int, ...], flat: int) -> str:
    """``w1`` for a scalar, ``W[1, 0]`` for element 2 of a 2x2 matrix: the one way every
    message and report names an element."""
    if not shape:
        return name
    return f"{name}[{', '.join(str(int(i)) for i in np.unravel_index(flat, shape))}]"


@dataclass
class Param:
    """One named parameter as the engine sees it."""

    name: str
    original: Any  # exactly what the user passed
    array: np.ndarray  # what gets perturbed: the user's array, or a private writable copy
    snapshot: np.ndarray  # bitwise copy taken before anything ran
    python_scalar: bool  # the user passed a Python/NumPy scalar, not an array
    in_place: bool  # ``array`` is the user's own array
    notes: list[str] = field(default_factory=list)

    @property
    def shape(self) -> tuple[int, ...]:
        return self.array.shape

    @property
    def dtype(self) -> np.dtype:
        return self.array.dtype

    @property
    def size(self) -> int:
        return self.array.size


@dataclass
class Group:
    """Several small parameters of one dtype seen as one flat tensor, members end to end.

    The full check differentiates a group in one pass (one pass of numpy work and one
    write-call-restore loop instead of one per parameter) and splits the results back; every
    element is written, evaluated and restored exactly as it would be on its own.
    """

    name: str
    members: tuple[Param, ...]
    starts: tuple[int, ...]  # flat start of each member, and the total size last
    rest: list[Any]  # what restores each element: its snapshot value, or _SNAPSHOT (scalars)
    snapshot: np.ndarray  # the members' snapshots end to end (flat; nobody writes it)
    writer: Callable[[Any, Any], None] | None = None  # ParamSet.writer's, built on first use

    @property
    def shape(self) -> tuple[int, ...]:
        return (self.size,)

    @property
    def dtype(self) -> np.dtype:
        return self.members[0].dtype

    @property
    def size(self) -> int:
        return self.starts[-1]

    python_scalar = False

    def locate(self, flat: int) -> tuple[Param, int]:
        """The member holding group element ``flat``, and the element's flat index in it."""
        k = int(np.searchsorted(self.starts, flat, side="right")) - 1
        return self.members[k], int(flat) - self.starts[k]


def _as_param(name: Any, value: Any) -> Param:
    if not isinstance(name, str):
        raise InputError(f"parameter names must be strings, got {name!r} ({type(name).__name__})")
    if type(value) is float and math.isfinite(value):  # the asker's scalars: nothing to refuse
        return Param(name, value, np.array(value), np.array(value), True, False, [])
    notes: list[str] = []
    if isinstance(value, np.ma.MaskedArray):
        # writing an element through a masked array unmasks it, and the snapshot keeps only
        # the data: the mask would not come back
        raise InputError(
            f"parameter {name!r} is a masked array (numpy.ma); gradcheck perturbs parameters "
            f"element by element and a write unmasks the element: pass {name}.filled(...) or "
            f"{name}.data and apply the mask inside the loss"
        )
    if isinstance(value, np.ndarray):
        array = value
        python_scalar = False
    elif isinstance(value, (bool, np.bool_)):
        raise InputError(f"parameter {name!r} is a bool; expected a float or a float ndarray")
    elif isinstance(value, (Real, np.number)) and not isinstance(value, np.complexfloating):
        if isinstance(value, (int, np.integer)):
            notes.append(f"{name!r} was the integer {value!r}; checked as float64 {float(value)!r}")
        # a NumPy float scalar keeps its dtype, so float16 is refused as it is for arrays
        array = np.array(float(value) if isinstance(value, (int, np.integer)) else value)
        python_scalar = True
    elif isinstance(value, (complex, np.complexfloating)):
        raise InputError(
            f"parameter {name!r} is complex; gradcheck checks real parameters: pass the real "
            "and imaginary parts as two float parameters"
        )
    else:
        raise InputError(
            f"parameter {name!r} is a {type(value).__name__}; expected a float or a float ndarray"
        )
    if array.dtype not in SUPPORTED_DTYPES:
        kind = array.dtype
        if np.issubdtype(kind, np.integer) or kind == np.bool_:
            hint = (
                "a finite difference on integers is always 0; convert it with "
                f"params[{name!r}] = params[{name!r}].astype(float) if it is a real parameter"
            )
        elif np.issubdtype(kind, np.complexfloating):
            hint = "pass the real and imaginary parts as two float parameters"
        elif kind == np.float16:
            hint = "float16 keeps 3 significant digits, too few for finite differences; use float32"
        elif kind.newbyteorder("=") in SUPPORTED_DTYPES:
            hint = "expected native byte order: convert it with .astype(np.float64)"
        else:
            hint = "expected float32 or float64"
        raise InputError(f"parameter {name!r} has dtype {kind}; {hint}")
    if array.size == 0:
        raise InputError(f"parameter {name!r} is empty (shape {array.shape}); nothing to check")
    finite = np.isfinite(array)
    if not finite.all():
        first = int(np.flatnonzero(~finite)[0])
        index = ", ".join(str(i) for i in np.unravel_index(first, array.shape))
        label = f"{name}[{index}]" if array.ndim else name
        raise InputError(
            f"parameter {name!r} is {array.flat[first]} at {label}; expected finite "
            "values: a finite difference at a NaN or infinite point means nothing"
        )
    in_place = not python_scalar and array.flags.writeable
    if in_place and _overlaps_itself(array):
        raise InputError(
            f"parameter {name!r} is a view whose elements share memory (np.broadcast_to or "
            "as_strided); perturbing one element would move others: pass a copy"
        )
    if not python_scalar and not in_place:
        notes.append(f"{name!r} is read-only; perturbed on a private copy")
    working = array if in_place else np.array(array, copy=True)
    return Param(
        name=name,
        original=value,
        array=working,
        snapshot=np.array(array, copy=True),
        python_scalar=python_scalar,
        in_place=in_place,
        notes=notes,
    )


def _overlaps_itself(array: np.ndarray) -> bool:
    """Whether two elements of ``array`` share a byte (a zero or too-small stride).

    Linear in the size: the byte offset of every element, sorted.
    """
    if array.flags.c_contiguous or array.flags.f_contiguous:
        return False
    offsets = np.zeros((), dtype=np.int64)
    for n, stride in zip(array.shape, array.strides, strict=True):
        offsets = np.add.outer(offsets, np.arange(n, dtype=np.int64) * stride)
    return bool((np.diff(np.sort(offsets, axis=None)) < array.itemsize).any())


def _not_params(params: Any) -> str:
    """Why ``params`` is not parameters, and for a bare array (scipy's ``check_grad(f, g, x0)``
    habit) how to name it."""
    text = (
        "params must be a dict of name -> float or ndarray (or a list, tuple or nesting of "
        f"them), got {type(params).__name__}"
    )
    if isinstance(params, np.ndarray):
        text += (
            ": name the array, check(lambda p: f(p['x']), lambda p: {'x': grad(p['x'])}, "
            "{'x': x}), or pass [x] with grad returning [g]"
        )
    return text


class ParamSet:
    """Validated parameters with element-wise perturbation and bitwise restoration."""

    def __init__(self, params: Mapping[str, Any]):
        if not isinstance(params, Mapping):
            raise InputError(_not_params(params))
        if not params:
            raise InputError("params is empty; pass at least one parameter")
        # claimed before any snapshot: another check must not have an element moved then
        self._claim = running.claim(
            [(str(n), v) for n, v in params.items() if isinstance(v, np.ndarray)]
        )
        try:
            self.params: dict[str, Param] = {n: _as_param(n, v) for n, v in params.items()}
            self._check_aliasing()
        except BaseException:
            running.release(self._claim)
            raise
        self.view: dict[str, Any] = {}
        for p in self.params.values():
            self.view[p.name] = self._public(p)
        self.groups: dict[str, Group] = {}  # never in ``names``: views onto real parameters
        self._writers: dict[tuple[str, bool], Callable[[Any, Any], None]] = {}
        self._claim.restore = _weak_restore(self)
        # a ParamSet dropped without finish() (a test's, say) still frees its arrays
        weakref.finalize(self, running.release, self._claim)

    def finish(self) -> None:
        """Restore every parameter (:meth:`restore_all`) and release their memory for other
        checks (:mod:`gradcheck.core.running`), whatever the restore raises."""
        try:
            self.restore_all()
        finally:
            running.release(self._claim)

    def _check_aliasing(self) -> None:
        # read-only arrays too: their private copies would move apart from what they view
        arrays = [p for p in self.params.values() if not p.python_scalar]
        for i, a in enumerate(arrays):
            for b in arrays[i + 1 :]:
                if np.shares_memory(a.original, b.original):
                    raise InputError(
                        f"parameters {a.name!r} and {b.name!r} share memory (one is a view of "
                        "the other, or both view one array); perturbing one would move the "
                        "other: pass each parameter once"
                    )

    @staticmethod
    def _public(p: Param) -> Any:
        """What the loss sees for ``p`` when it is not perturbed."""
        if p.python_scalar:
            return (
                p.original if not isinstance(p.original, (int, np.integer)) else float(p.original)
            )
        return p.array

    # -- element access -------------------------------------------------------------------
    @property
    def names(self) -> list[str]:
        return list(self.params)

    def __getitem__(self, name: str) -> Any:
        """The :class:`Param` called ``name``, or the :class:`Group` of that name."""
        return self.params[name] if name in self.params else self.groups[name]

    def group(self, names: list[str]) -> str:
        """Register ``names`` (parameters of one dtype) as one :class:`Group`; its name."""
        members = tuple(self.params[n] for n in names)
        if len({p.dtype for p in members}) != 1:
            raise ValueError("a group's members share one dtype")
        name = f"[{names[0]} .. {names[-1]}]"
        while name in self.params or name in self.groups:  # never shadow a real parameter
            name += "'"
        starts = np.cumsum([0, *(p.size for p in members)]).tolist()
        rest = [
            value
            for p in members
            for value in (
                [_SNAPSHOT] * p.size if p.python_scalar else p.snapshot.reshape(-1).tolist()
            )
        ]
        snapshot = np.concatenate([p.snapshot.reshape(-1) for p in members])
        self.groups[name] = Group(name, members, tuple(starts), rest, snapshot)
        return name

    def member(self, name: str, flat: int) -> tuple[Param, int]:
        """The real parameter and its flat index behind element ``flat`` of ``name``."""
        if name in self.groups:
            return self.groups[name].locate(flat)
        return self.params[name], flat

    def flat_values(self, name: str, indices: np.ndarray | None = None) -> np.ndarray:
        """The parameter's values as a flat array in its own dtype (a copy); only those at
        flat ``indices`` when given (no copy of the whole tensor for a few elements)."""
        if name in self.groups:
            whole = self.groups[name].snapshot
            return whole.copy() if indices is None else whole[indices]
        flat = self.params[name].snapshot.reshape(-1)
        return flat.copy() if indices is None else flat[np.asarray(indices, dtype=np.intp)]

    def scalar_type(self, name: str) -> type:
        """What a perturbed scalar parameter is handed to the loss as: a NumPy float keeps its
        type; floats and ints (seen as floats, see ``_public``) are ``float``."""
        p = self.params[name]
        return p.array.dtype.type if isinstance(p.original, np.floating) else float

    def writer(self, name: str, bulk: bool = False) -> Callable[[Any, Any], None]:
        """:meth:`_new_writer`, made once per parameter and kind (every evaluation request of
        the pilot asks for one; what a writer holds, the parameter's own array or the view,
        never changes)."""
        key = (name, bool(bulk))
        write = self._writers.get(key)
        if write is None:
            write = self._writers[key] = self._new_writer(name, bulk)
        return write

    def _new_writer(self, name: str, bulk: bool = False) -> Callable[[Any, Any], None]:
        """``write(index, values)`` for parameter ``name``: puts ``values`` at flat ``index``
        (an int, a slice or an index array) where the loss sees them; writing what
        :meth:`originals` gives puts the snapshot bits back. For the one write-call-restore
        loop (:class:`gradcheck.core.evaluation.Evaluator`).

        Arrays are written through their flat iterator (C order whatever the layout, the
        fastest single-element writer, and it honours the writeable flag, so a loss that froze
        the array makes the next write raise); scalars are replaced in the view, and restored
        as the very object the loss saw first. ``bulk``: the points move slices or index
        arrays (fast mode), written through a flat view of a C-contiguous array instead.
        """
        if name in self.groups:
            group = self.groups[name]
            if group.writer is None:  # built once per group: the lookup tables cost O(size)
                group.writer = self._group_writer(group)
            return group.writer
        p = self.params[name]
        if not p.python_scalar:
            array, flat = p.array, p.array.flat
            if not bulk:
                return flat.__setitem__
            if not array.flags.c_contiguous:
                return lambda index, values: flat.__setitem__(index, _values(values))
            line = array.reshape(-1)  # a view: slice writes ~10x faster than through .flat

            def write_bulk(index: Any, values: Any) -> None:
                if not array.flags.writeable:  # the view keeps its own flag: ask the array's
                    flat[index] = _values(values)  # raises, as a frozen array must
                elif isinstance(values, Following) and isinstance(index, slice):
                    values.follow(line[index])  # from the point the slice holds
                elif isinstance(values, Fill) and isinstance(index, slice):
                    values(line[index])  # written in place: no buffer of the slice's size
                else:
                    line[index] = _values(values)

            return write_bulk
        view, kind, public = self.view, self.scalar_type(name), self._public(p)

        def write_scalar(index: Any, values: Any) -> None:
            if values is _SNAPSHOT:
                view[name] = public
            elif type(values) is float:  # a single element's value, from ndarray.tolist()
                view[name] = kind(values)
            else:
                view[name] = kind(np.ravel(_values(values))[0])

        return write_scalar

    def _group_writer(self, group: Group) -> Callable[[Any, Any], None]:
        """:meth:`writer` for a group: single elements (int indices) only, each written by its
        member's own writer at its own flat index.

        Before it moves an element, it checks that the element still holds its snapshot: a
        loss that writes into a member while another member is perturbed would otherwise be
        overwritten, and hidden, by that element's own write-restore later in the pass (one
        parameter at a time, :meth:`changed` after each parameter's pass catches it instead).
        """
        members, view = group.members, self.view
        writers = [self.writer(p.name) for p in members]
        sizes = np.diff(group.starts)
        which = np.repeat(np.arange(len(members)), sizes).tolist()
        local = (np.arange(group.size) - np.repeat(group.starts[:-1], sizes)).tolist()
        rest = group.rest
        publics = [self._public(p) for p in members]

        def holds_snapshot(k: int, i: int, index: int) -> bool:
            p = members[k]
            if p.python_scalar:  # an int's public float is rebuilt: equal, maybe not identical
                held, public = view[p.name], publics[k]
                return held is public or (type(held) is type(public) and held == public)
            return bool(p.array.flat[i] == rest[index])

        def write_element(index: Any, values: Any) -> None:
            k, i = which[index], local[index]
            moving = values is not _SNAPSHOT and values != rest[index]  # not a restore
            if moving and not holds_snapshot(k, i, index):
                raise StateMutationError(
                    f"parameter(s) {members[k].name!r} changed while "
                    f"{', '.join(repr(p.name) for p in members)} were being perturbed; a loss "
                    "must not update its parameters"
                )
            writers[k](i, values)

        return write_element

    def _group_originals(self, group: Group, indices: Any) -> list[Any]:
        rest = group.rest
        return [rest[i] for i in indices]

    def originals(self, name: str, indices: list[Any]) -> list[Any]:
        """What :meth:`writer` must write at each of ``indices`` to restore the snapshot."""
        if name in self.groups:
            return self._group_originals(self.groups[name], indices)
        p = self.params[name]
        if p.python_scalar:
            return [_SNAPSHOT] * len(indices)
        snapshot = p.snapshot.reshape(-1)
        return [snapshot[i] for i in indices]  # slices and index arrays give arrays

    def element_originals(self, name: str, indices: np.ndarray) -> list[Any]:
        """:meth:`originals` for single elements (flat int indices), as Python numbers."""
        if name in self.groups:
            return self._group_originals(self.groups[name], np.asarray(indices).tolist())
        p = self.params[name]
        if p.python_scalar:
            return [_SNAPSHOT] * len(indices)
        return p.snapshot.reshape(-1)[indices].tolist()

    def restore_all(self) -> None:
        """Copy every snapshot back, bit for bit, and put the view back to the originals.

        Each parameter is restored on its own, so one that cannot be written (a loss that made
        it read-only and whose base is read-only too) does not stop the others.
        """
        failed = []
        for p in self.params.values():
            self.view[p.name] = self._public(p)
            if p.python_scalar:
                continue
            try:
                if not p.array.flags.writeable:  # the loss froze it; it was writable before
                    p.array.flags.writeable = True
                np.copyto(p.array, p.snapshot, casting="no")
            except ValueError:
                if p.array.tobytes() != p.snapshot.tobytes():  # frozen, but intact is no loss
                    failed.append(p.name)
        if failed:
            raise StateMutationError(
                f"could not restore parameter(s) {', '.join(map(repr, failed))}: the loss or "
                "grad made them read-only; their original values are lost"
            )

    def changed(self) -> list[str]:
        """Names whose value differs, bit for bit, from the snapshot.

        Catches a loss or gradient function that writes into its parameters, one that
        rebinds an entry of the dict it was given, and one that makes an array read-only.
        """
        return [p.name for p in self.params.values() if self.moved(p)]

    def moved(self, p: Param) -> bool:
        """Whether parameter ``p`` differs from its snapshot (:meth:`changed`, for one)."""
        current = self.view.get(p.name)
        if not p.python_scalar:
            if current is not p.array or not p.array.flags.writeable:
                return True
            current = p.array
        elif current is p.original and type(current) is float:
            return False  # the very float the snapshot was taken from: floats are immutable
        elif current is not p.original:
            current = np.asarray(current)
            if current.dtype != p.snapshot.dtype or current.shape != ():
                return True
        return not same_bits(np.asarray(current), p.snapshot)

    def runs(self, name: str, indices: np.ndarray) -> list[tuple[Param, slice, np.ndarray]] | None:
        """Group ``name``'s elements ``indices`` as runs of consecutive elements of one member
        each: (member, the run's slice of ``indices``, the member's own flat indices). ``None``
        when the runs are shorter than ``RUN_MIN`` on average (a group of scalars): its own
        writer (:meth:`writer`) then serves better than a loop per run."""
        if len(indices) < 2 * RUN_MIN:  # (a pilot's two points: no lookups)
            return None
        group = self.groups[name]
        which = np.searchsorted(group.starts, indices, side="right") - 1
        cuts = (np.flatnonzero(np.diff(which)) + 1).tolist()
        if (len(cuts) + 1) * RUN_MIN > len(indices):
            return None
        bounds = [0, *cuts, len(indices)]
        out = []
        for lo, hi in itertools.pairwise(bounds):
            k = int(which[lo])
            out.append((group.members[k], slice(lo, hi), indices[lo:hi] - group.starts[k]))
        return out

    @property
    def notes(self) -> list[str]:
        return [n for p in self.params.values() for n in p.notes]


def _weak_restore(pset: ParamSet) -> Callable[[], None]:
    """``pset.restore_all`` without keeping ``pset`` alive (the claim outlives no ParamSet)."""
    method = weakref.WeakMethod(pset.restore_all)

    def restore() -> None:
        bound = method()
        if bound is not None:
            bound()

    return restore


def read_only_error(p: Param) -> StateMutationError:
    """What a write into a parameter the loss made read-only raises."""
    return StateMutationError(
        f"parameter {p.name!r} became read-only during the check: the loss or grad must "
        "not change its parameters' flags"
    )
