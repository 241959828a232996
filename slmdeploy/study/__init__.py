"""Studies: models × targets × devices × workloads, measured across a lab and resumable.

    from slmdeploy.study import load_study, build_plan, run_study
    plan = build_plan(load_study("nightly.toml"))          # jobs and estimates, nothing run
    result = run_study("nightly.toml", "studies/nightly")  # or resume=True after a crash
    frame = slmdeploy.analysis.load_runs("studies/nightly")

See docs/studies.md for the study file and the study directory.
"""

from slmdeploy.study.plan import Job, Plan, build_plan
from slmdeploy.study.runner import StudyResult, run_study
from slmdeploy.study.spec import Study, StudyError, load_study

__all__ = ["Job", "Plan", "Study", "StudyError", "StudyResult", "build_plan", "load_study", "run_study"]
