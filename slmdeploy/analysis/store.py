"""The embedded results database (DuckDB): one row per run, one per timed iteration.

Writers take a file lock, so parallel benches on several devices share one database.
"""

from __future__ import annotations

import contextlib
import fcntl
from pathlib import Path
from typing import Iterator

import pandas as pd

from slmdeploy.analysis.records import iteration_rows, record

DB_NAME = "results.duckdb"


@contextlib.contextmanager
def _write_lock(db: Path) -> Iterator[None]:
    with open(db.with_name(db.name + ".lock"), "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


BOOLEAN_COLUMNS = {"complete", "warmup", "thermal_throttled"}
DOUBLE_SUFFIXES = ("_tps", "_sd", "_ms", "_mib", "_c", "_ratio", "_s")


def _sql_type(name: str, dtype) -> str:
    """Column types by name first: a first run whose metric is None must not fix the type to NULL."""
    if name in BOOLEAN_COLUMNS:
        return "BOOLEAN"
    if name.endswith(DOUBLE_SUFFIXES):
        return "DOUBLE"
    return {"int64": "BIGINT", "float64": "DOUBLE", "bool": "BOOLEAN"}.get(str(dtype), "VARCHAR")


def _append(con, table: str, frame: pd.DataFrame) -> None:
    columns = {r[0] for r in con.execute(
        "select column_name from information_schema.columns where table_name = ?", [table]).fetchall()}
    missing = [(name, _sql_type(name, dtype)) for name, dtype in frame.dtypes.items() if name not in columns]
    if not columns:
        con.execute(f"create table {table} (" + ", ".join(f'"{n}" {t}' for n, t in missing) + ")")
    else:
        for name, sql_type in missing:  # a newer slmdeploy adds a metric: widen the table
            con.execute(f'alter table {table} add column "{name}" {sql_type}')
    con.register("incoming", frame)
    con.execute(f"insert into {table} by name select * from incoming")
    con.unregister("incoming")


def store_run(run_dir: Path, db: Path) -> None:
    """Insert (or replace) one run directory's record and iterations."""
    import duckdb

    row = record(run_dir)
    db.parent.mkdir(parents=True, exist_ok=True)
    with _write_lock(db), contextlib.closing(duckdb.connect(str(db))) as con:
        for table in ("runs", "iterations"):
            with contextlib.suppress(duckdb.CatalogException):
                con.execute(f"delete from {table} where run_id = ?", [row["run_id"]])
        _append(con, "runs", pd.DataFrame([row]))
        iterations = iteration_rows(run_dir, row["run_id"])
        if iterations:
            _append(con, "iterations", pd.DataFrame(iterations))


def read_table(db: Path, table: str = "runs") -> pd.DataFrame:
    import duckdb

    with contextlib.closing(duckdb.connect(str(db), read_only=True)) as con:
        order = "started_at" if table == "runs" else "run_id, warmup desc, run, phase desc"
        return con.execute(f"select * from {table} order by {order}").df()
