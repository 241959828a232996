"""The study directory: everything a study produced, and the rules that keep it consistent.

    DIR/study.toml       the study file as it was started (resume reads this one)
    DIR/study.json       where it came from (its folder resolves relative paths), when
    DIR/journal.jsonl    the source of truth (see journal.py)
    DIR/artifacts/       one exported artifact per (model, target)
    DIR/runs/            one run directory per job that ran: its latest attempt
    DIR/attempts/        earlier attempts (failed then retried) and interrupted ones, kept
    DIR/results.duckdb   an index of runs/, rebuilt from it whenever they disagree

``runs/`` and the database always agree after ``reconcile`` (called at every start and
end of ``study run``), so a study loaded with ``analysis.load_runs(DIR)`` has exactly one
row per job, however often its runner was killed and resumed.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from slmdeploy.analysis.records import RUN_FILE, is_run_dir
from slmdeploy.analysis.store import DB_NAME, delete_runs, store_runs, stored_run_ids
from slmdeploy.bench.rundir import now_iso, unfinished_status
from slmdeploy.study.journal import JOURNAL
from slmdeploy.study.spec import Study, StudyError, load_study, parse_study

STUDY_FILE = "study.toml"
ORIGIN_FILE = "study.json"
RUNS = "runs"
ATTEMPTS = "attempts"
ARTIFACTS = "artifacts"
LOCK_FILE = ".runner.lock"


def is_study_dir(path: Path) -> bool:
    return (Path(path) / JOURNAL).is_file() and (Path(path) / STUDY_FILE).is_file()


@dataclass(frozen=True)
class StudyDir:
    path: Path
    _index_lock: threading.Lock = field(default_factory=threading.Lock, compare=False, repr=False)

    @property
    def runs(self) -> Path:
        return self.path / RUNS

    @property
    def attempts(self) -> Path:
        return self.path / ATTEMPTS

    @property
    def artifacts(self) -> Path:
        return self.path / ARTIFACTS

    @property
    def db(self) -> Path:
        return self.path / DB_NAME

    def study(self) -> Study:
        """The study this directory was started with (relative paths from its original folder)."""
        import tomllib

        origin = json.loads((self.path / ORIGIN_FILE).read_text())
        data = tomllib.loads((self.path / STUDY_FILE).read_text())
        return parse_study(data, origin.get("source", str(self.path / STUDY_FILE)), Path(origin["base_dir"]))

    # -- starting and resuming -------------------------------------------------------------

    @classmethod
    def create(cls, path: Path, study_file: Path, devices: list[str] | None = None) -> "StudyDir":
        """A new study directory for ``study_file`` (on ``devices`` instead of its own, if given);
        refuses one that already holds a study."""
        path = Path(path)
        if is_study_dir(path):
            raise StudyError(f"{path} already holds a study; add --resume to complete it, or pick another --dir.")
        if path.exists() and any(path.iterdir()):
            raise StudyError(f"{path} exists and is not empty; pick a new --dir for the study.")
        from slmdeploy.study.plan import check_sources

        from slmdeploy.study.devices_override import load_study_on, with_devices

        check_sources(load_study_on(Path(study_file), devices or []))  # checked before anything is written
        text = Path(study_file).read_text()
        if devices:
            text = with_devices(text, devices)
        staging = path.with_name(f".{path.name}.tmp-{os.getpid()}")
        try:  # built aside and renamed into place: a runner killed here leaves no half study
            shutil.rmtree(staging, ignore_errors=True)
            staging.mkdir(parents=True)
            (staging / STUDY_FILE).write_text(text)
            (staging / ORIGIN_FILE).write_text(json.dumps({
                "source": str(Path(study_file).resolve()), "base_dir": str(Path(study_file).resolve().parent),
                "created_at": now_iso()}, indent=2) + "\n")
            (staging / JOURNAL).touch()
            os.replace(staging, path)  # onto a missing or empty directory
        except OSError as err:
            shutil.rmtree(staging, ignore_errors=True)
            raise StudyError(f"cannot write the study directory {path}: {err.strerror}; pick another --dir.") from None
        return cls(path)

    @classmethod
    def open(cls, path: Path, study_file: Path | None = None) -> "StudyDir":
        """An existing study directory (``--resume``); ``study_file``, if given, must be the one it started with."""
        path = Path(path)
        if not is_study_dir(path):
            raise StudyError(f"{path} is not a study directory (no {JOURNAL}); start it with "
                             "`slmdeploy study run FILE --dir DIR` (without --resume).")
        if study_file is not None:
            started = (path / STUDY_FILE).read_text()
            if Path(study_file).read_text() != started:
                raise StudyError(f"{study_file} differs from the study {path} was started with ({path / STUDY_FILE}); "
                                 "resume without FILE, or start the changed study in a new --dir.")
        return cls(path)

    @contextlib.contextmanager
    def runner_lock(self) -> Iterator[None]:
        """One runner per study directory (the kernel frees the lock if the runner dies)."""
        with open(self.path / LOCK_FILE, "a+") as fh:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                fh.seek(0)
                raise StudyError(f"another `slmdeploy study run` ({fh.read().strip() or 'a process'}) is working on "
                                 f"{self.path}; wait for it, or stop it first.") from None
            fh.seek(0)
            fh.truncate()
            fh.write(f"pid {os.getpid()}")
            fh.flush()
            yield

    # -- keeping runs/ and the database in step ------------------------------------------

    def run_path(self, rel: str) -> Path:
        return self.path / rel

    def supersede(self, rel: str) -> None:
        """Move a run directory out of runs/ into attempts/ (kept, no longer the job's result)."""
        src = self.path / rel
        with self._index_lock:
            if not src.is_dir():
                return
            self.attempts.mkdir(exist_ok=True)
            dst = self.attempts / src.name
            if dst.exists():
                shutil.rmtree(dst)
            os.replace(src, dst)
            delete_runs(self.db, [src.name])

    def reconcile(self) -> None:
        """Make results.duckdb hold exactly the runs in runs/: add the missing (one batch), drop the rest.

        The database is an index of runs/, brought up to date every few seconds while a
        study runs and at its end; a runner killed in between leaves runs/ whole and the
        next start catches the index up.
        """
        with self._index_lock:
            present = {p.name: p for p in self.runs.iterdir() if is_run_dir(p)} if self.runs.is_dir() else {}
            stored = stored_run_ids(self.db)
            delete_runs(self.db, sorted(stored - present.keys()))
            store_runs([present[name] for name in sorted(present.keys() - stored)], self.db)


def mark_interrupted(run_dir: Path, why: str) -> str:
    """A run its runner never saw end: ``incomplete`` (something was measured) or ``failed``; returns the status.

    A run that settled on its own (recovered from its device, or finished before the runner
    died) keeps the status it has.
    """
    meta_path = run_dir / RUN_FILE
    try:
        meta = json.loads(meta_path.read_text())
    except (OSError, ValueError):
        meta = {}
    if meta.get("status") in (None, "running"):
        meta.update(status=unfinished_status(run_dir), error=why, finished_at=now_iso())
        tmp = meta_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(meta, indent=2, default=str) + "\n")
        os.replace(tmp, meta_path)
    return str(meta.get("status"))
