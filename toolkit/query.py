"""A small, safe filter language over catalog columns: ``--where`` on the command line, views in the dashboard.

Examples::

    success and length > 20
    operator in ["alice", "bob"] and factors.object_color != "red"
    "needs-review" in tags
    not provenance.augmentation          # real (non-synthetic) episodes
    quality.ok and compatibility.score > 0.8

The expression is parsed with Python's ``ast`` and evaluated by walking a whitelist of node types
(boolean operators, comparisons, constants, lists and dotted column names) over whole columns at
once; nothing is ever executed, so a view saved inside a dataset cannot run code.
"""

from __future__ import annotations

import ast
import operator
from collections.abc import Mapping
from typing import Any

import numpy as np

from toolkit.errors import DemoforgeError

_COMPARE = {
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
    ast.Gt: operator.gt,
    ast.GtE: operator.ge,
}


class QueryError(DemoforgeError):
    """The filter expression is not valid."""


def _dotted(node: ast.AST) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        base = _dotted(node.value)
        return None if base is None else f"{base}.{node.attr}"
    return None


class _Evaluator:
    def __init__(self, columns: Mapping[str, np.ndarray], n: int, text: str) -> None:
        self.columns, self.n, self.text = columns, n, text

    def fail(self, why: str) -> QueryError:
        return QueryError(f"--where {self.text!r}: {why}")

    def value(self, node: ast.AST) -> Any:
        name = _dotted(node)
        if name is not None:
            if name in ("True", "False", "None"):
                return {"True": True, "False": False, "None": None}[name]
            if name not in self.columns:
                known = ", ".join(sorted(self.columns)[:30])
                raise self.fail(f"unknown field '{name}' (known: {known})")
            return self.columns[name]
        if isinstance(node, ast.Constant) and isinstance(node.value, (str, int, float, bool, type(None))):
            return node.value
        if isinstance(node, (ast.List, ast.Tuple, ast.Set)):
            return [self.value(e) for e in node.elts]
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
            return -self.value(node.operand)
        return self.mask(node)

    def mask(self, node: ast.AST) -> np.ndarray:
        if isinstance(node, ast.BoolOp):
            masks = [self.mask(v) for v in node.values]
            combine = np.logical_and if isinstance(node.op, ast.And) else np.logical_or
            out = masks[0]
            for m in masks[1:]:
                out = combine(out, m)
            return out
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
            return ~self.mask(node.operand)
        if isinstance(node, ast.Compare):
            out = np.ones(self.n, bool)
            left = self.value(node.left)
            for op, right_node in zip(node.ops, node.comparators):
                right = self.value(right_node)
                out &= self.compare(op, left, right)
                left = right
            return out
        if _dotted(node) is not None or isinstance(node, ast.Constant):
            return self.truthy(self.value(node))
        raise self.fail(f"'{ast.unparse(node)}' is not allowed (use comparisons, and/or/not, lists, field names)")

    def truthy(self, v: Any) -> np.ndarray:
        if isinstance(v, np.ndarray):
            return np.array([bool(x) and x == x for x in v], bool) if v.dtype == object else v.astype(bool)
        return np.full(self.n, bool(v))

    def compare(self, op: ast.cmpop, left: Any, right: Any) -> np.ndarray:
        if isinstance(op, (ast.In, ast.NotIn)):
            hit = self.membership(left, right)
            return ~hit if isinstance(op, ast.NotIn) else hit
        fn = _COMPARE.get(type(op))
        if fn is None:
            raise self.fail(f"operator {type(op).__name__} is not supported")
        return self.elementwise(fn, left, right)

    def elementwise(self, fn: Any, left: Any, right: Any) -> np.ndarray:
        l_arr = left if isinstance(left, np.ndarray) else np.full(self.n, left, dtype=object)
        r_arr = right if isinstance(right, np.ndarray) else np.full(self.n, right, dtype=object)
        if l_arr.dtype != object and r_arr.dtype != object:
            return np.asarray(fn(l_arr, r_arr), bool)
        out = np.zeros(self.n, bool)
        for i, (a, b) in enumerate(zip(l_arr, r_arr)):
            try:
                out[i] = a is not None and b is not None and bool(fn(a, b))
            except TypeError:
                out[i] = False  # comparing a string with a number is simply not a match
        return out

    def membership(self, left: Any, right: Any) -> np.ndarray:
        if isinstance(right, list):  # column in [a, b]
            values = left if isinstance(left, np.ndarray) else np.full(self.n, left, dtype=object)
            return np.array([v in right for v in values], bool)
        if isinstance(right, np.ndarray):  # "tag" in tags: right is a column of lists or strings
            return np.array([r is not None and left in r for r in right], bool)
        raise self.fail("'in' needs a list or a field on its right")


def evaluate(text: str, columns: Mapping[str, np.ndarray], n: int) -> np.ndarray:
    """Boolean mask of the ``n`` rows for which ``text`` holds; ``QueryError`` (one line) if it is invalid."""
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError as e:
        raise QueryError(f"--where {text!r}: syntax error at column {e.offset}: {e.msg}") from None
    return _Evaluator(columns, n, text).mask(tree.body)
