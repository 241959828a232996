"""The embedded results database (DuckDB): one row per run, one per timed iteration.

Writers take a file lock, so parallel benches on several devices share one database.
"""

from __future__ import annotations

import contextlib
import fcntl
from pathlib import Path
from typing import Iterator

import pandas as pd

from slmdeploy._paths import check_creatable
from slmdeploy.analysis.records import iteration_rows, record
from slmdeploy.errors import OutputDirError

DB_NAME = "results.duckdb"


@contextlib.contextmanager
def _write_lock(db: Path) -> Iterator[None]:
    with open(db.with_name(db.name + ".lock"), "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


BOOLEAN_COLUMNS = {"complete", "warmup", "thermal_throttled", "valid"}
DOUBLE_SUFFIXES = ("_tps", "_sd", "_ms", "_mib", "_c", "_ratio", "_s", "_median", "_ci_lo", "_ci_hi", "_cv",
                   "_gbps", "_fraction", "_bytes", "_per_token")
BIGINT_COLUMNS = {"bandwidth_threads", "mem_kv_positions", "arch_vocab_size", "arch_layers", "arch_heads",
                  "arch_kv_heads"}


def _sql_type(name: str, dtype) -> str:
    """Column types by name first: a first run whose metric is None must not fix the type to NULL."""
    if name in BOOLEAN_COLUMNS:
        return "BOOLEAN"
    if name.endswith(DOUBLE_SUFFIXES):
        return "DOUBLE"
    if name in BIGINT_COLUMNS:
        return "BIGINT"
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


@contextlib.contextmanager
def _connect(db: Path) -> Iterator:
    """A write connection under the file lock; ``OutputDirError`` (one line) when ``db`` cannot be one."""
    import duckdb

    try:
        db.parent.mkdir(parents=True, exist_ok=True)
        with _write_lock(db), contextlib.closing(duckdb.connect(str(db))) as con:
            yield con
    except (OSError, duckdb.Error) as err:
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise OutputDirError(f"cannot use the results database {db}: {reason}. Pass another --db, "
                             "or fix or remove that file.") from None


def check_db(db: Path) -> None:
    """Fail before a run, not after it, when ``db`` cannot take its results (a new one is not created yet)."""
    check_creatable(db, "results database", "Pass another --db, or fix or remove that file.")
    if db.exists():  # it must open as a DuckDB database, for writing
        with _connect(db):
            pass


def store_run(run_dir: Path, db: Path) -> None:
    """Insert (or replace) one run directory's record and iterations."""
    store_runs([run_dir], db)


def store_runs(run_dirs: list[Path], db: Path) -> None:
    """Insert (or replace) many run directories in one transaction (a study indexes its runs in batches)."""
    if not run_dirs:
        return
    rows = [record(Path(d)) for d in run_dirs]
    ids = [row["run_id"] for row in rows]
    # (no local variable may share a table's name: DuckDB would scan it in place of the table)
    steps = [it for d, row in zip(run_dirs, rows) for it in iteration_rows(Path(d), row["run_id"])]
    with _connect(db) as con:
        tables = {r[0] for r in con.execute("select table_name from information_schema.tables").fetchall()}
        con.execute("begin")
        for table in {"runs", "iterations"} & tables:
            con.execute(f"delete from {table} where list_contains(?, run_id)", [ids])
        _append(con, "runs", pd.DataFrame(rows))
        if steps:
            _append(con, "iterations", pd.DataFrame(steps))
        con.execute("commit")


def delete_runs(db: Path, run_ids: list[str]) -> None:
    """Remove runs (and their iterations) from the database; their directories are untouched."""
    import duckdb

    if not run_ids or not db.is_file():
        return
    with _write_lock(db), contextlib.closing(duckdb.connect(str(db))) as con:
        for table in ("runs", "iterations"):
            with contextlib.suppress(duckdb.CatalogException):
                con.execute(f"delete from {table} where list_contains(?, run_id)", [list(run_ids)])


def stored_run_ids(db: Path) -> set[str]:
    """The run ids the database holds (empty for a missing or empty database)."""
    import duckdb

    if not db.is_file():
        return set()
    with _write_lock(db), contextlib.closing(duckdb.connect(str(db), read_only=True)) as con:
        try:
            return {r[0] for r in con.execute("select run_id from runs").fetchall()}
        except duckdb.CatalogException:
            return set()


def read_table(db: Path, table: str = "runs") -> pd.DataFrame:
    import duckdb

    with contextlib.closing(duckdb.connect(str(db), read_only=True)) as con:
        order = "started_at" if table == "runs" else "run_id, warmup desc, run, phase desc"
        return con.execute(f"select * from {table} order by {order}").df()
