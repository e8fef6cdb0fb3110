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

Semantics: a comparison with a missing value (None) is never a match, nor is one that does not apply
(a string against a number); ``x in [a, b]`` is Python's ``in``; ``"t" in column`` tests each cell
(a tag in the tags list, a substring of a text). Comparisons run vectorised; the masks that would need
a pass over Python objects (text equality, tag membership, truthiness of a text or bool column) are
kept in ``columns.memo`` when ``columns`` is a :class:`Columns` (what ``Catalog.columns`` returns, a new
one per catalog version), so the next filter on the same catalog version reuses them.
"""

from __future__ import annotations

import ast
import itertools
import operator
from collections.abc import Callable, Mapping
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
# fn(a, b) == _REFLECTED[fn](b, a): a constant on the left is turned around to put the column first
_REFLECTED = {operator.eq: operator.eq, operator.ne: operator.ne, operator.lt: operator.gt,
              operator.le: operator.ge, operator.gt: operator.lt, operator.ge: operator.le}
_SCALARS = (str, int, float, bool, np.generic, type(None))
MEMO_LIMIT = 256  # masks kept per Columns (1 MB each at a million rows); the memo starts over beyond


class QueryError(DemoforgeError):
    """The filter expression is not valid."""


_VERSIONS = itertools.count(1)


class Columns(dict):
    """``{name: column}`` plus ``memo``: masks derived from these exact arrays (see the module doc), and
    ``version``, unique in the process, to key caches by (``id()`` of a dropped mapping can come back).

    A memo entry holds the column it was computed from and is used only while that same array is in
    the mapping, so replacing a column never returns a stale mask; still, whoever changes columns should
    make a new ``Columns`` (``Catalog.columns`` makes one per catalog version)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.memo: dict[tuple, tuple[np.ndarray, np.ndarray]] = {}
        self.version = next(_VERSIONS)


def _dotted(node: ast.AST) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        base = _dotted(node.value)
        return None if base is None else f"{base}.{node.attr}"
    return None


def _numeric(a: np.ndarray) -> bool:
    return a.dtype.kind in "biuf"


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float, np.number, np.bool_))  # bool is an int


def _present(a: np.ndarray) -> np.ndarray:
    """Cells holding a value (object columns store a missing value as None)."""
    return np.ones(len(a), bool) if a.dtype != object else np.not_equal(a, None).astype(bool)


def _loop(fn: Callable[[Any, Any], Any], left: Any, right: Any, n: int) -> np.ndarray:
    """The reference semantics, one cell at a time: None is no match, nor is a comparison that fails."""
    l_arr = left if isinstance(left, np.ndarray) else itertools.repeat(left, n)
    r_arr = right if isinstance(right, np.ndarray) else itertools.repeat(right, n)
    out = np.zeros(n, bool)
    for i, (a, b) in enumerate(zip(l_arr, r_arr)):
        try:
            out[i] = a is not None and b is not None and bool(fn(a, b))
        except (TypeError, ValueError):
            out[i] = False  # comparing a string with a number is simply not a match
    return out


class _Evaluator:
    def __init__(self, columns: Mapping[str, np.ndarray], n: int, text: str) -> None:
        self.columns, self.n, self.text = columns, n, text
        self.memo: dict | None = getattr(columns, "memo", None)

    def fail(self, why: str) -> QueryError:
        return QueryError(f"--where {self.text!r}: {why}")

    def cached(self, key: tuple, column: np.ndarray, compute: Callable[[], np.ndarray]) -> np.ndarray:
        """``compute()``, kept in the memo for this exact ``column`` array (never modify the result)."""
        if self.memo is None:
            return compute()
        key = (key[0], id(column), *key[1:])
        hit = self.memo.get(key)
        if hit is not None and hit[0] is column:
            return hit[1]
        mask = compute()
        if len(self.memo) >= MEMO_LIMIT:
            self.memo.clear()
        self.memo[key] = (column, mask)
        return mask

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
        if not isinstance(v, np.ndarray):
            return np.full(self.n, bool(v))
        if v.dtype != object:
            return v.astype(bool)
        # bool(x) and x == x (a NaN is not true), over the whole column in C
        return self.cached(("truthy",), v, lambda: v.astype(bool) & np.equal(v, v).astype(bool))

    def compare(self, op: ast.cmpop, left: Any, right: Any) -> np.ndarray:
        if isinstance(op, (ast.In, ast.NotIn)):
            hit = self.membership(left, right)
            return ~hit if isinstance(op, ast.NotIn) else hit
        fn = _COMPARE.get(type(op))
        if fn is None:
            raise self.fail(f"operator {type(op).__name__} is not supported")
        return self.elementwise(fn, left, right)

    def elementwise(self, fn: Callable[[Any, Any], Any], left: Any, right: Any) -> np.ndarray:
        left_col, right_col = isinstance(left, np.ndarray), isinstance(right, np.ndarray)
        if not left_col and not right_col:
            return np.full(self.n, bool(_loop(fn, left, right, 1)[0]))
        if not left_col:  # constant <op> column: turn it around
            fn, left, right = _REFLECTED[fn], right, left
            right_col = False
        if right_col:
            return self.columns_compare(fn, left, right)
        if not isinstance(right, _SCALARS):
            return _loop(fn, left, right, self.n)
        if right is None:
            return np.zeros(self.n, bool)
        if _numeric(left):
            if _is_number(right):
                try:
                    with np.errstate(invalid="ignore"):
                        return np.asarray(fn(left, right), bool)
                except (OverflowError, TypeError):  # e.g. an integer beyond int64
                    return _loop(fn, left, right, self.n)
            # a number never equals a string; every other comparison between them fails
            return np.full(self.n, fn is operator.ne)
        if fn in (operator.eq, operator.ne):
            eq = self.equal(left, right)
            return eq if fn is operator.eq else _present(left) & ~eq
        return self.object_compare(fn, left, right)

    def object_compare(self, fn: Callable[[Any, Any], Any], column: np.ndarray, value: Any) -> np.ndarray:
        """A column with object cells against a constant, in C where the cells allow it."""
        present = _present(column)
        out = np.zeros(self.n, bool)
        try:
            with np.errstate(invalid="ignore"):
                out[present] = np.asarray(fn(column[present], value), dtype=bool)
        except (TypeError, ValueError):  # mixed types, or cells whose comparison is not one bool
            out = _loop(fn, column, value, self.n)
        return out

    def columns_compare(self, fn: Callable[[Any, Any], Any], left: np.ndarray, right: np.ndarray) -> np.ndarray:
        if _numeric(left) and _numeric(right):
            with np.errstate(invalid="ignore"):
                return np.asarray(fn(left, right), bool)
        both = _present(left) & _present(right)
        out = np.zeros(self.n, bool)
        try:
            with np.errstate(invalid="ignore"):
                out[both] = np.asarray(fn(left[both], right[both]), dtype=bool)
        except (TypeError, ValueError):
            out = _loop(fn, left, right, self.n)
        return out

    def membership(self, left: Any, right: Any) -> np.ndarray:
        if isinstance(right, list):  # column in [a, b]
            if not isinstance(left, np.ndarray):
                return np.full(self.n, left in right)
            if not all(isinstance(item, _SCALARS) for item in right):
                return np.array([v in right for v in left], bool)
            hit = np.zeros(self.n, bool)
            for item in dict.fromkeys(right):  # Python's `in`: equal to one of them (None matches None)
                hit |= self.equal(left, item)
            return hit
        if isinstance(right, np.ndarray):  # "tag" in tags: right is a column of lists or strings
            if isinstance(left, np.ndarray) or not isinstance(left, _SCALARS):
                return self.contains_loop(left, right)
            return self.cached(("in", type(left), left), right, lambda: self.contains_loop(left, right))
        raise self.fail("'in' needs a list or a field on its right")

    def equal(self, column: np.ndarray, item: Any) -> np.ndarray:
        """``cell == item`` for every cell, None included (for ``in [..., None]``)."""
        if _numeric(column):
            if item is None or not _is_number(item):
                return np.zeros(self.n, bool)
            return np.asarray(column == item, bool)
        if item is None:
            return ~_present(column)
        key = ("eq", type(item), item)
        return self.cached(key, column, lambda: self.object_compare(operator.eq, column, item))

    def contains_loop(self, left: Any, right: np.ndarray) -> np.ndarray:
        if not isinstance(left, np.ndarray):
            try:  # the common case, a tag in lists of tags: one C-level pass
                return np.fromiter(map(operator.contains, right, itertools.repeat(left)), bool, self.n)
            except TypeError:
                pass  # a cell without members (None, a number): the loop below
        l_arr = left if isinstance(left, np.ndarray) else None
        out = np.zeros(self.n, bool)
        for i, r in enumerate(right):
            try:
                out[i] = r is not None and (l_arr[i] if l_arr is not None else left) in r
            except TypeError:
                out[i] = False  # a number has no members
        return out


def evaluate(text: str, columns: Mapping[str, np.ndarray], n: int) -> np.ndarray:
    """Boolean mask of the ``n`` rows for which ``text`` holds; ``QueryError`` (one line) if it is invalid."""
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError as e:
        raise QueryError(f"--where {text!r}: syntax error at column {e.offset}: {e.msg}") from None
    # A copy: the mask may be one kept in the memo, and the caller owns what it gets
    return np.array(_Evaluator(columns, n, text).mask(tree.body), dtype=bool)
