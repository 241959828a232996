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


def _append(con, table: str, frame: pd.DataFrame) -> None:
    con.register("incoming", frame)
    exists = con.execute(
        "select count(*) from information_schema.tables where table_name = ?", [table]
    ).fetchone()[0]
    if not exists:
        con.execute(f"create table {table} as select * from incoming")
    else:
        columns = {r[0] for r in con.execute(f"describe {table}").fetchall()}
        for name, dtype in frame.dtypes.items():
            if name not in columns:  # a newer slmdeploy adds a metric: widen the table
                sql_type = {"int64": "BIGINT", "float64": "DOUBLE", "bool": "BOOLEAN"}.get(str(dtype), "VARCHAR")
                con.execute(f'alter table {table} add column "{name}" {sql_type}')
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
