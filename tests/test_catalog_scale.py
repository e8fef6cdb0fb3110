"""The catalog's incremental columns and the vectorised filters, checked against full loads and the per-row reference.

Real SQLite files on disk, real concurrent connections (another ``Catalog``, another process), real
score tables; the reference for every incremental result is a fresh ``Catalog`` loading everything.
"""

from __future__ import annotations

import ast
import hashlib
import json
import math
import operator
import os
import sqlite3
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from toolkit import catalog as catalog_module
from toolkit import query
from toolkit.catalog import SEQ, Catalog, flatten
from toolkit.scores import PassScores, ScoreColumns, revision, write_pass_scores

REPO = Path(__file__).resolve().parents[1]
MIXED = (None, 0, 1, 2**40, 1.5, -0.25, "a", "b")  # a factor whose column changes type as rows come and go


def entry(k: int, *, tags=(), mixed=None, success=None, flags=(), synthetic=False, length=None, colour="red") -> dict:
    meta = {"task": "pick", "operator": ("alice", "bob", None)[k % 3], "success": success,
            "factors": {"colour": colour, "mixed": mixed}, "tags": list(tags),
            "flags": {f: {"frames": [[0, 1]]} for f in flags}}
    if synthetic:
        meta["provenance"] = {"augmentation": "greenscreen", "seed": k}
    return {"id": f"{k:04d}", "length": length if length is not None else 10 + k % 7,
            "created": f"2025-01-01T00:00:{k % 60:02d}Z", "meta": meta}


def fresh(path: Path) -> dict[str, np.ndarray]:
    """Everything loaded from scratch by a new reader: the reference."""
    catalog = Catalog(path / "catalog.sqlite", readonly=True, scores_root=path)
    try:
        return catalog.columns()
    finally:
        catalog.close()


def same_cell(a, b) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return type(a) is type(b) and a == b


def assert_same_columns(got, want) -> None:
    assert list(got) == list(want)
    for name in want:
        g, w = got[name], want[name]
        assert g.dtype == w.dtype, (name, g.dtype, w.dtype)
        assert len(g) == len(w), name
        bad = [i for i, (a, b) in enumerate(zip(g.tolist(), w.tolist())) if not same_cell(a, b)]
        assert not bad, (name, [(g[i], w[i]) for i in bad[:5]])


def snapshot(columns) -> dict[str, list]:
    """A deep copy to compare with later (NaN as a string: NaN != NaN)."""
    def cell(v):
        if isinstance(v, float) and math.isnan(v):
            return "NaN"
        return list(v) if isinstance(v, list) else (type(v).__name__, v)
    return {name: (str(col.dtype), [cell(v) for v in col.tolist()]) for name, col in columns.items()}


def write_scores(root: Path, ids: list[str], revisions: dict[str, str], seed: int, stamp: int) -> None:
    rng = np.random.default_rng(seed)
    rows = {i: {"score": round(float(rng.random()), 3), "ok": bool(rng.random() < 0.5)} for i in ids}
    flags = {i: {"jerky": {"frames": [[0, 2]]}} for i in ids if rows[i]["score"] < 0.3}
    write_pass_scores(root, PassScores("q", "1", {}, "h", "", rows=rows, flags=flags,
                                       revisions={i: revisions.get(i, "old") for i in ids}))
    # Scores are noticed by file mtime and size; give each write its own mtime so no two can look alike
    path = root / "curation" / "q.parquet"
    os.utime(path, ns=(stamp * 1_000_000_000, stamp * 1_000_000_000))


# ---------------------------------------------------------------------------------------- property
ids_st = st.integers(0, 40)
entry_st = st.builds(
    lambda k, tags, mixed, success, flags, synthetic, length: entry(
        k, tags=tags, mixed=mixed, success=success, flags=flags, synthetic=synthetic, length=length),
    ids_st, st.lists(st.sampled_from(["a", "b", "c"]), unique=True, max_size=3), st.sampled_from(MIXED),
    st.sampled_from([True, False, None]), st.lists(st.sampled_from(["jerky", "nonfinite"]), unique=True, max_size=2),
    st.booleans(), st.one_of(st.none(), st.integers(1, 5)))
op_st = st.one_of(
    st.tuples(st.just("upsert"), st.lists(entry_st, min_size=1, max_size=6)),
    st.tuples(st.just("remove"), st.lists(ids_st, min_size=1, max_size=4)),
    st.tuples(st.just("scores"), st.integers(0, 2**16)),
    st.tuples(st.just("clear"), st.none()),
)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops=st.lists(st.tuples(op_st, st.booleans()), min_size=1, max_size=14), bulk=st.integers(0, 1500),
       pieces=st.sampled_from([0, 3, catalog_module._PIECES]))
def test_incremental_columns_equal_a_fresh_full_load(ops, bulk, pieces):
    """Random appends, replacements, removals, clears and score rewrites; after any of them the long-lived
    reader (read-only, another connection) and the writer's own columns equal a fresh full load. ``pieces``:
    how many changed rows are still spliced from slices (beyond: gather/scatter), so both ways run."""
    with tempfile.TemporaryDirectory() as tmp, pytest.MonkeyPatch.context() as patch:
        patch.setattr(catalog_module, "_PIECES", pieces)
        root = Path(tmp)
        writer = Catalog(root / "catalog.sqlite", scores_root=root)
        # A first bulk of rows, so that patches also go the slicing and the gather/scatter ways
        writer.upsert(entry(100 + k, tags=["a"] * (k % 2), mixed=MIXED[k % len(MIXED)]) for k in range(bulk))
        reader = Catalog(root / "catalog.sqlite", readonly=True, scores_root=root)
        reader.columns()
        revisions: dict[str, str] = {}
        for step, ((kind, arg), check) in enumerate(ops):
            if kind == "upsert":
                writer.upsert(arg)
                revisions.update((e["id"], revision(e)) for e in arg)
            elif kind == "remove":
                writer.remove(f"{k:04d}" for k in arg)
            elif kind == "clear":
                writer.clear()
            else:
                ids = writer.ids()
                write_scores(root, ids[:: 1 + arg % 3], revisions, arg, 1_000_000 + step)
            if check or step == len(ops) - 1:
                want = fresh(root)
                assert_same_columns(reader.columns(), want)
                assert_same_columns(writer.columns(), want)
        # The score columns are ScoreColumns' own join, whichever way the catalog got them
        columns = reader.columns()
        if "id" in columns and len(columns["id"]):
            reference = ScoreColumns(root).columns(columns["id"], columns["revision"])
            assert_same_columns({k: columns[k] for k in reference}, reference)
        reader.close()
        writer.close()


@pytest.mark.parametrize("pieces", [0, 2048])
def test_column_types_follow_the_rows(tmp_path, monkeypatch, pieces):
    """A column is int64, float64 (None as NaN) or object by what its rows hold right now, the way a full
    load types it: patches move it between the three as values come and go."""
    monkeypatch.setattr(catalog_module, "_PIECES", pieces)
    writer = Catalog(tmp_path / "catalog.sqlite")
    reader = Catalog(tmp_path / "catalog.sqlite", readonly=True)
    steps = [
        ("upsert", [(k, k) for k in range(4)], "i"),
        ("upsert", [(4, None)], "f"),
        ("upsert", [(5, 2.5)], "f"),
        ("remove", [5], "f"),
        ("remove", [4], "i"),  # the last None gone: integers again, exactly
        ("upsert", [(6, 1.5)], "f"),
        ("upsert", [(6, 7)], "i"),  # a float replaced by an integer
        ("upsert", [(7, "a")], "O"),
        ("upsert", [(7, None)], "f"),  # the only text replaced
        ("remove", [7], "i"),
        ("upsert", [(k, None) for k in (0, 1, 2, 3, 6)], "O"),  # nothing but None
        ("upsert", [(2, 2**40)], "f"),
        ("upsert", [(1, 0.5), (3, "b")], "O"),
        ("remove", [3], "f"),
    ]
    for kind, change, dtype in steps:
        if kind == "upsert":
            writer.upsert(entry(k, mixed=v) for k, v in change)
        else:
            writer.remove(f"{k:04d}" for k in change)
        columns = reader.columns()
        assert columns["factors.mixed"].dtype.kind == dtype, (kind, change)
        assert_same_columns(columns, fresh(tmp_path))
        assert_same_columns(writer.columns(), fresh(tmp_path))


def test_returned_columns_never_change_afterwards(tmp_path):
    """Appends write into spare room of shared buffers: a version handed out earlier must stay as it was."""
    writer = Catalog(tmp_path / "catalog.sqlite", scores_root=tmp_path)
    writer.upsert(entry(k, tags=["a"], mixed=k) for k in range(0, 400, 2))
    reader = Catalog(tmp_path / "catalog.sqlite", readonly=True, scores_root=tmp_path)
    versions = []
    changes = [
        lambda: writer.upsert([entry(1000)]),  # append
        lambda: writer.upsert([entry(1001, mixed="text")]),  # append, column changes type
        lambda: writer.upsert([entry(5)]),  # insert in the middle
        lambda: writer.upsert([entry(4, tags=["b"])]),  # replace
        lambda: writer.remove(["0010"]),  # remove
        lambda: writer.upsert([entry(1002)]),  # append again
    ]
    for change in changes:
        columns = reader.columns()
        versions.append((columns, snapshot(columns)))
        change()
    assert_same_columns(reader.columns(), fresh(tmp_path))
    for columns, saved in versions:
        assert snapshot(columns) == saved


# ------------------------------------------------------------------------------------- concurrency
def test_a_second_connection_sees_changes_without_reopening(tmp_path):
    path = tmp_path / "catalog.sqlite"
    writer = Catalog(path, scores_root=tmp_path)
    writer.upsert(entry(k) for k in range(10))
    reader = Catalog(path, readonly=True, scores_root=tmp_path)
    assert reader.select() == [f"{k:04d}" for k in range(10)]
    writer.upsert([entry(10, tags=["new"])])
    assert reader.select('"new" in tags') == ["0010"]
    writer.remove(["0003"])
    assert "0003" not in reader.select()
    writer.upsert([entry(4, tags=["new"], colour="blue")])
    assert reader.select('"new" in tags') == ["0004", "0010"]
    assert reader.rows(["0004"])[0]["factors.colour"] == "blue"

    # A recorder in another process commits rows; the open reader sees them on its next call
    script = textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(REPO)!r})
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        from pathlib import Path
        from toolkit.catalog import Catalog
        from test_catalog_scale import entry
        catalog = Catalog(Path({str(path)!r}))
        catalog.upsert([entry(20, tags=["other-process"]), entry(21)])
        catalog.remove(["0000"])
        catalog.close()
    """)
    subprocess.run([sys.executable, "-c", script], check=True, timeout=120)
    assert reader.select('"other-process" in tags') == ["0020"]
    assert "0000" not in reader.select() and "0021" in reader.select()
    assert_same_columns(reader.columns(), fresh(tmp_path))

    # clear() starts a new epoch: the reader loads everything again
    writer.clear()
    assert reader.select() == []
    writer.upsert([entry(7)])
    assert reader.select() == ["0007"]
    assert_same_columns(reader.columns(), fresh(tmp_path))


def test_rows_written_by_plain_sql_are_tracked(tmp_path):
    """Triggers number rows that a writer without sequence numbers (an older demoforge, the sqlite3 shell)
    inserts, updates or deletes, so the incremental reader still sees them."""
    path = tmp_path / "catalog.sqlite"
    writer = Catalog(path)
    writer.upsert(entry(k) for k in range(5))
    reader = Catalog(path, readonly=True)
    reader.columns()
    db = sqlite3.connect(path)
    db.execute("INSERT INTO episodes (id, length, task, tags) VALUES ('0009', 3, 'push', '[\"sql\"]')")
    db.execute("UPDATE episodes SET task = 'edited' WHERE id = '0001'")
    db.execute("DELETE FROM episodes WHERE id = '0002'")
    db.commit()
    db.close()
    columns = reader.columns()
    assert_same_columns(columns, fresh(tmp_path))
    assert reader.select('"sql" in tags') == ["0009"]
    assert reader.select('task == "edited"') == ["0001"]
    assert "0002" not in reader.select()


# ----------------------------------------------------------------------------------- old catalogs
OLD_SCHEMA = ("CREATE TABLE IF NOT EXISTS episodes (id TEXT PRIMARY KEY, length INTEGER, task TEXT, "
              "operator TEXT, success INTEGER, created TEXT, tags TEXT)")


def write_old_catalog(path: Path, entries: list[dict]) -> None:
    """A catalog exactly as the previous demoforge wrote it (no sequence numbers, no extra tables)."""
    db = sqlite3.connect(path)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute(OLD_SCHEMA)
    old_rows(db, entries)
    db.close()


def old_rows(db: sqlite3.Connection, entries: list[dict]) -> None:
    rows = [flatten(e) for e in entries]
    existing = {r[1] for r in db.execute("PRAGMA table_info(episodes)")}
    for name in sorted({k for r in rows for k in r} - existing):
        db.execute(f'ALTER TABLE episodes ADD COLUMN "{name}"')
    for row in rows:
        cols = list(row)
        db.execute(f"INSERT OR REPLACE INTO episodes ({','.join(repr(c) for c in cols)}) "
                   f"VALUES ({','.join('?' * len(cols))})",
                   [json.dumps(row[c]) if c == "tags" else row[c] for c in cols])
    db.commit()


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def schema(path: Path) -> set[str]:
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return {r[0] for r in db.execute("SELECT name FROM sqlite_master")}
    finally:
        db.close()


def test_old_catalog_opens_read_only_untouched_and_migrates_when_writable(tmp_path):
    entries = [entry(k, tags=["a"] * (k % 2), mixed=MIXED[k % len(MIXED)], synthetic=k % 4 == 0) for k in range(30)]
    old = tmp_path / "old" / "catalog.sqlite"
    old.parent.mkdir()
    write_old_catalog(old, entries)
    reference = tmp_path / "new"  # the same entries in a catalog of the current format
    reference.mkdir()
    Catalog(reference / "catalog.sqlite").upsert(entries)
    before, tables = digest(old), schema(old)
    assert "catalog_meta" not in tables

    reader = Catalog(old, readonly=True)
    assert_same_columns(reader.columns(), fresh(reference))
    assert reader.select('"a" in tags and not provenance.augmentation') == \
        [f"{k:04d}" for k in range(30) if k % 2 and k % 4]
    assert reader.rows(["0003"])[0]["factors.mixed"] == MIXED[3]
    assert digest(old) == before and schema(old) == tables  # read-only: never written

    # An older demoforge keeps writing it: the reader (full reloads for this format) follows
    db = sqlite3.connect(old)
    old_rows(db, [entry(40, tags=["late"]), entry(1, colour="blue")])
    db.execute("DELETE FROM episodes WHERE id = '0002'")
    db.commit()
    db.close()
    more = [entry(40, tags=["late"]), entry(1, colour="blue")]
    Catalog(reference / "catalog.sqlite").upsert(more)
    Catalog(reference / "catalog.sqlite").remove(["0002"])
    assert_same_columns(reader.columns(), fresh(reference))

    # Opened writable, it is migrated in place: sequence numbers, tombstones, triggers
    writer = Catalog(old)
    assert {"catalog_meta", "catalog_removed", "episodes_seq_insert", "episodes_seq_delete"} <= schema(old)
    assert SEQ in [r[1] for r in sqlite3.connect(old).execute("PRAGMA table_info(episodes)")]
    assert SEQ not in writer.column_names() and SEQ not in writer.columns()
    assert_same_columns(writer.columns(), fresh(reference))
    assert_same_columns(reader.columns(), fresh(reference))  # the old reader switches to the new format
    # ...and from now on follows changes incrementally, old rows (without numbers) included
    writer.upsert([entry(41, tags=["newer"]), entry(3, tags=["b"])])
    writer.remove(["0005"])
    Catalog(reference / "catalog.sqlite").upsert([entry(41, tags=["newer"]), entry(3, tags=["b"])])
    Catalog(reference / "catalog.sqlite").remove(["0005"])
    assert_same_columns(reader.columns(), fresh(reference))
    assert_same_columns(reader.columns(), fresh(old.parent))
    assert reader.select('"newer" in tags') == ["0041"]


def test_rows_are_copies_and_unknown_ids_raise(tmp_path):
    catalog = Catalog(tmp_path / "catalog.sqlite")
    catalog.upsert([entry(1, tags=["a"]), entry(2, tags=["a"])])
    row = catalog.rows(["0002"])[0]
    row["tags"].append("changed")
    assert catalog.rows(["0001", "0002"])[1]["tags"] == ["a"]
    with pytest.raises(KeyError):
        catalog.rows(["0003"])


# ------------------------------------------------------------------------------------------ filters
class ReferenceEvaluator:
    """The filter language as it was evaluated before it was vectorised: one cell at a time."""

    def __init__(self, columns, n):
        self.columns, self.n = columns, n

    def value(self, node):
        if isinstance(node, ast.Name) and node.id in ("True", "False", "None"):
            return {"True": True, "False": False, "None": None}[node.id]
        if isinstance(node, (ast.Name, ast.Attribute)):
            return self.columns[ast.unparse(node)]
        if isinstance(node, ast.Constant):
            return node.value
        if isinstance(node, ast.List):
            return [self.value(e) for e in node.elts]
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
            return -self.value(node.operand)
        return self.mask(node)

    def mask(self, node):
        if isinstance(node, ast.BoolOp):
            masks = [self.mask(v) for v in node.values]
            out = masks[0]
            for m in masks[1:]:
                out = (np.logical_and if isinstance(node.op, ast.And) else np.logical_or)(out, m)
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
        v = self.value(node)
        if isinstance(v, np.ndarray):
            return np.array([bool(x) and x == x for x in v], bool) if v.dtype == object else v.astype(bool)
        return np.full(self.n, bool(v))

    def compare(self, op, left, right):
        if isinstance(op, (ast.In, ast.NotIn)):
            if isinstance(right, list):
                values = left if isinstance(left, np.ndarray) else np.full(self.n, left, dtype=object)
                hit = np.array([v in right for v in values], bool)
            else:
                hit = np.array([r is not None and left in r for r in right], bool)
            return ~hit if isinstance(op, ast.NotIn) else hit
        fn = {ast.Eq: operator.eq, ast.NotEq: operator.ne, ast.Lt: operator.lt, ast.LtE: operator.le,
              ast.Gt: operator.gt, ast.GtE: operator.ge}[type(op)]
        l_arr = left if isinstance(left, np.ndarray) else np.full(self.n, left, dtype=object)
        r_arr = right if isinstance(right, np.ndarray) else np.full(self.n, right, dtype=object)
        if l_arr.dtype != object and r_arr.dtype != object:
            return np.asarray(fn(l_arr, r_arr), bool)
        out = np.zeros(self.n, bool)
        for i, (a, b) in enumerate(zip(l_arr, r_arr)):
            try:
                out[i] = a is not None and b is not None and bool(fn(a, b))
            except TypeError:
                out[i] = False
        return out


def reference(text: str, columns, n: int) -> np.ndarray:
    return ReferenceEvaluator(columns, n).mask(ast.parse(text, mode="eval").body)


def obj(values) -> np.ndarray:
    out = np.empty(len(values), dtype=object)
    out[:] = values
    return out


CELLS = {
    "tags": st.lists(st.sampled_from(["a", "b", "needs-review"]), unique=True, max_size=3),
    "s": st.sampled_from(["x", "y", "xy", "", None]),
    "m": st.sampled_from([None, 1, 2.5, "x", True, False, float("nan"), 0]),
    "f": st.sampled_from([0.0, 1.0, 2.5, -1.0, float("nan")]),
    "i": st.integers(-2, 3),
    "b": st.booleans(),
    "ob": st.sampled_from([True, False, None]),
}
CONSTANTS = ['"x"', '"a"', "1", "2.5", "True", "False", "None", "-1", "0"]
OPS = ["==", "!=", "<", "<=", ">", ">="]
FIELDS = ["s", "m", "f", "i", "b", "ob", "factors.colour"]


def atom_st():
    field = st.sampled_from(FIELDS)
    const = st.sampled_from(CONSTANTS)
    op = st.sampled_from(OPS)
    items = st.lists(const, min_size=1, max_size=3).map(lambda c: "[" + ", ".join(c) + "]")
    return st.one_of(
        st.builds(lambda f, o, c: f"{f} {o} {c}", field, op, const),
        st.builds(lambda c, o, f: f"{c} {o} {f}", const, op, field),
        st.builds(lambda c1, f, c2: f"{c1} < {f} <= {c2}", const, field, const),
        st.builds(lambda f, o, g: f"{f} {o} {g}", field, op, field),
        st.builds(lambda f, i, neg: f"{f} {'not in' if neg else 'in'} {i}", field, items, st.booleans()),
        st.builds(lambda t, neg: f'"{t}" {"not in" if neg else "in"} tags',
                  st.sampled_from(["a", "b", "needs-review", "zz"]), st.booleans()),
        st.builds(lambda t: f'"{t}" in s', st.sampled_from(["x", "y", ""])),
        st.builds(lambda f, neg: f"{'not ' if neg else ''}{f}", st.sampled_from(FIELDS + ["tags"]), st.booleans()),
    )


expr_st = st.recursive(atom_st(), lambda inner: st.one_of(
    st.builds(lambda a, b: f"({a}) and ({b})", inner, inner),
    st.builds(lambda a, b: f"({a}) or ({b})", inner, inner),
    st.builds(lambda a: f"not ({a})", inner)), max_leaves=4)


@settings(max_examples=300, deadline=None)
@given(data=st.data(), n=st.integers(0, 30), exprs=st.lists(expr_st, min_size=1, max_size=6))
def test_filters_match_the_cell_by_cell_reference(data, n, exprs):
    cells = {name: data.draw(st.lists(strategy, min_size=n, max_size=n)) for name, strategy in CELLS.items()}
    columns = query.Columns({
        "tags": obj(cells["tags"]), "s": obj(cells["s"]), "m": obj(cells["m"]),
        "f": np.array(cells["f"], float), "i": np.array(cells["i"], np.int64), "b": np.array(cells["b"], bool),
        "ob": obj(cells["ob"]), "factors.colour": obj(cells["s"]),
    })
    for text in exprs:
        want = reference(text, columns, n)
        got = query.evaluate(text, columns, n)
        assert got.dtype == bool and got.tolist() == want.tolist(), text
        got[:] = ~got  # the caller's array: changing it must not reach the memo
        assert query.evaluate(text, columns, n).tolist() == want.tolist(), text
        plain = query.evaluate(text, dict(columns), n)  # without a memo
        assert plain.tolist() == want.tolist(), text


def test_tag_membership_on_a_catalog_matches_the_reference_and_follows_changes(tmp_path):
    writer = Catalog(tmp_path / "catalog.sqlite")
    tags = [["needs-review"], [], ["good", "needs-review"], ["good"], ["keep"]]
    writer.upsert(entry(k, tags=tags[k % 5], success=[True, False, None][k % 3], flags=["jerky"] * (k % 2))
                  for k in range(200))
    reader = Catalog(tmp_path / "catalog.sqlite", readonly=True)
    for text in ['"needs-review" in tags', '"good" not in tags and success', '"keep" in tags or flags.jerky',
                 'not ("needs-review" in tags) and operator in ["alice", None]', '"x" in tags']:
        columns = reader.columns()
        n = len(columns["id"])
        assert query.evaluate(text, columns, n).tolist() == reference(text, columns, n).tolist(), text
        assert query.evaluate(text, columns, n).tolist() == reference(text, columns, n).tolist(), text  # memo
        writer.upsert([entry(300 + len(text), tags=["needs-review", "keep"])])
        writer.upsert([entry(n % 50, tags=[])])  # a re-tag: the memo of the old version must not leak
        after = reader.columns()
        assert after is not columns and after.version > columns.version
        assert query.evaluate(text, after, len(after["id"])).tolist() == \
            reference(text, after, len(after["id"])).tolist(), text
