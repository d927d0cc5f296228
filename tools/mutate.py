"""A small AST mutator: one-change variants of a Python function, swapped into it in place.

Operators (each mutant changes exactly one node of the function's body):

* ``operator``: ``+`` <-> ``-``, ``*`` <-> ``/``, ``@`` -> ``*``, ``**`` -> ``*``;
* ``swap``: the operands of ``-``, ``/``, ``@``, ``**`` exchanged;
* ``drop``: a binary operation replaced by one of its operands (a dropped term or factor), a
  unary minus removed, an accumulating or call statement deleted;
* ``constant``: a number ``c`` becomes ``c + 1`` and ``c - 1`` (changed constants, indices and
  axes), ``True`` <-> ``False`` (``keepdims``);
* ``axis``: an ``axis=`` or ``keepdims=`` argument removed;
* ``unwrap``: a one-argument call replaced by its argument (``reversed(r)`` -> ``r``,
  ``np.sqrt(e)`` -> ``e``);
* ``compare``: ``>`` <-> ``>=``, ``<`` <-> ``<=``, ``==`` <-> ``!=``;
* ``transpose``: ``a.T`` -> ``a``;
* ``reduce``: ``.sum(`` <-> ``.mean(``;
* ``accumulate``: ``a += b`` -> ``a = b`` (overwrite) and ``a -= b``.

A mutant is applied by compiling the mutated definition and assigning its code object to the
live function's ``__code__``, so every caller (including stages built earlier) runs it; the
original code object is put back afterwards. Functions with closures are not supported.
"""

from __future__ import annotations
import __future__

import ast
import copy
import inspect
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from types import CodeType, FunctionType

SWAPS: dict[type, tuple[type, ...]] = {
    ast.Add: (ast.Sub,),
    ast.Sub: (ast.Add,),
    ast.Mult: (ast.Div,),
    ast.Div: (ast.Mult,),
    ast.MatMult: (ast.Mult,),
    ast.Pow: (ast.Mult,),
}
COMPARES: dict[type, type] = {
    ast.Gt: ast.GtE,
    ast.GtE: ast.Gt,
    ast.Lt: ast.LtE,
    ast.LtE: ast.Lt,
    ast.Eq: ast.NotEq,
    ast.NotEq: ast.Eq,
}
REDUCTIONS = {"sum": "mean", "mean": "sum"}


@dataclass(frozen=True)
class Mutant:
    """One single-node change of a function."""

    target: str  # "module:qualname"
    index: int  # position of the changed node in the function's pre-order walk
    variant: int  # which replacement of that node
    kind: str
    line: int  # line in the module's file
    before: str
    after: str

    def __str__(self) -> str:
        return f"{self.target} line {self.line} [{self.kind}]: {self.before}  ->  {self.after}"


def _walk(node: ast.AST) -> Iterator[tuple[ast.AST, ast.AST, str, int | None]]:
    """Pre-order (node, parent, field, list index) over ``node``'s descendants."""
    for name, value in ast.iter_fields(node):
        if isinstance(value, list):
            for i, item in enumerate(value):
                if isinstance(item, ast.AST):
                    yield item, node, name, i
                    yield from _walk(item)
        elif isinstance(value, ast.AST):
            yield value, node, name, None
            yield from _walk(value)


def variants(node: ast.AST) -> list[tuple[str, ast.AST]]:
    """Every (kind, replacement node) of one node; empty when no operator applies."""
    out: list[tuple[str, ast.AST]] = []
    if isinstance(node, ast.BinOp):
        for op in SWAPS.get(type(node.op), ()):
            out.append(("operator", ast.BinOp(node.left, op(), node.right)))
        if isinstance(node.op, (ast.Sub, ast.Div, ast.MatMult, ast.Pow)):
            out.append(("swap", ast.BinOp(node.right, node.op, node.left)))
        out += [("drop", node.left), ("drop", node.right)]
    elif isinstance(node, ast.Expr) and isinstance(node.value, ast.Call):
        out.append(("drop", ast.Pass()))
    elif isinstance(node, ast.Call):
        for k in node.keywords:
            if k.arg in ("axis", "keepdims"):
                rest = [other for other in node.keywords if other is not k]
                out.append(("axis", ast.Call(node.func, node.args, rest)))
        if len(node.args) == 1 and not node.keywords and not isinstance(node.args[0], ast.Starred):
            out.append(("unwrap", node.args[0]))
    elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        out.append(("drop", node.operand))
    elif isinstance(node, ast.Constant) and isinstance(node.value, bool):
        out.append(("constant", ast.Constant(not node.value)))
    elif isinstance(node, ast.Constant) and isinstance(node.value, (int, float)):
        out += [("constant", ast.Constant(node.value + delta)) for delta in (1, -1)]
    elif isinstance(node, ast.Compare) and len(node.ops) == 1 and type(node.ops[0]) in COMPARES:
        out.append(
            ("compare", ast.Compare(node.left, [COMPARES[type(node.ops[0])]()], node.comparators))
        )
    elif isinstance(node, ast.Attribute) and node.attr == "T":
        out.append(("transpose", node.value))
    elif (
        isinstance(node, ast.Attribute)
        and node.attr in REDUCTIONS
        and isinstance(node.ctx, ast.Load)
    ):
        out.append(("reduce", ast.Attribute(node.value, REDUCTIONS[node.attr], ast.Load())))
    elif isinstance(node, ast.AugAssign) and isinstance(node.op, ast.Add):
        out.append(("accumulate", ast.Assign([node.target], node.value)))
        out.append(("accumulate", ast.AugAssign(node.target, ast.Sub(), node.value)))
        out.append(("drop", ast.Pass()))
    return [(kind, ast.copy_location(new, node)) for kind, new in out]


def _definition(func: FunctionType) -> tuple[ast.FunctionDef, str]:
    """The function's definition node, parsed from its module's file, and that file's name."""
    module = sys.modules[func.__module__]
    filename = inspect.getsourcefile(module) or "<unknown>"
    tree = ast.parse(inspect.getsource(module), filename)
    path = func.__qualname__.split(".")
    body = tree.body
    for part in path:
        node = next(
            (n for n in body if isinstance(n, (ast.FunctionDef, ast.ClassDef)) and n.name == part),
            None,
        )
        if node is None:
            raise LookupError(f"no definition of {func.__qualname__} in {filename}")
        body = node.body
    assert isinstance(node, ast.FunctionDef)
    return node, filename


def _body_nodes(definition: ast.FunctionDef) -> Iterator[tuple[ast.AST, ast.AST, str, int | None]]:
    """The walk of the body, skipping the docstring (a string constant mutates to nothing)."""
    for i, statement in enumerate(definition.body):
        if (
            i == 0
            and isinstance(statement, ast.Expr)
            and isinstance(getattr(statement, "value", None), ast.Constant)
        ):
            continue
        yield statement, definition, "body", i
        yield from _walk(statement)


def target_name(func: FunctionType) -> str:
    return f"{func.__module__}:{func.__qualname__}"


def _context(node: ast.AST, parents: dict[int, ast.AST]) -> ast.AST:
    """What to show of a change: the node, widened to its enclosing expression while it is
    too short to read alone (``1`` in ``axis=-1`` shows as the whole call)."""
    shown = node
    while isinstance(parents.get(id(shown)), (ast.expr, ast.keyword)) and (
        isinstance(shown, (ast.Constant, ast.UnaryOp, ast.Name, ast.keyword))
        or len(ast.unparse(shown)) < 12
    ):
        shown = parents[id(shown)]
    return shown


def mutants(func: FunctionType) -> list[Mutant]:
    """Every single-node mutant of ``func``'s body, in source order."""
    if func.__code__.co_freevars:
        raise ValueError(f"{target_name(func)} has a closure; mutants of it are not supported")
    definition, _ = _definition(func)
    walk = list(_body_nodes(definition))
    parents = {id(node): parent for node, parent, _field, _pos in walk}
    found = []
    for index, (node, parent, field, position) in enumerate(walk):
        shown = _context(node, parents)
        before = ast.unparse(shown)
        for variant, (kind, new) in enumerate(variants(node)):
            _put(parent, field, position, new)
            try:
                after = ast.unparse(shown if shown is not node else new)
            finally:
                _put(parent, field, position, node)
            found.append(
                Mutant(
                    target_name(func),
                    index,
                    variant,
                    kind,
                    getattr(node, "lineno", definition.lineno),
                    before,
                    after,
                )
            )
    return found


def _put(parent: ast.AST, field: str, position: int | None, node: ast.AST) -> None:
    if position is None:
        setattr(parent, field, node)
    else:
        getattr(parent, field)[position] = node


def mutated_code(func: FunctionType, mutant: Mutant) -> CodeType:
    """The code object of ``func`` with ``mutant`` applied."""
    definition, filename = _definition(func)
    definition = copy.deepcopy(definition)
    definition.decorator_list = []
    for index, (node, parent, field, position) in enumerate(_body_nodes(definition)):
        if index == mutant.index:
            _put(parent, field, position, copy.deepcopy(variants(node)[mutant.variant][1]))
            break
    else:
        raise LookupError(f"{mutant} does not match {target_name(func)}")
    module = ast.fix_missing_locations(ast.Module([definition], type_ignores=[]))
    flags = __future__.annotations.compiler_flag
    code = compile(module, filename, "exec", flags=flags, dont_inherit=True)
    return next(c for c in code.co_consts if isinstance(c, CodeType) and c.co_name == func.__name__)


@contextmanager
def applied(func: FunctionType, mutant: Mutant) -> Iterator[Callable]:
    """Run ``func`` as ``mutant`` inside the block; the original code is restored on exit."""
    original = func.__code__
    func.__code__ = mutated_code(func, mutant)
    try:
        yield func
    finally:
        func.__code__ = original
