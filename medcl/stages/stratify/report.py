"""Stage 6, the report: ``report.md`` with its plots in ``plots/`` and ``report.html``.

Reads what the evaluation wrote (:func:`medcl.report.write_stratify_report` reads the run
directory); writes ``report/done.json``.
"""

from __future__ import annotations

import time

from medcl.report import write_stratify_report
from medcl.stages._checks import check_seconds
from medcl.stages._deps import stratify_evaluate_deps, stratify_report_deps
from medcl.stages._done import require_current, reusable, write_record
from medcl.stages.stratify._shared import Job

RECORD = "report/done.json"
OUTPUTS = ["report.md", "report.html"]


def run_report(job: Job) -> dict:
    cfg, run, data, labels = job.cfg, job.run, job.ds.data, job.ds.labels  # type: ignore[attr-defined]
    deps = stratify_report_deps(cfg, data)
    done = reusable(run, RECORD, deps, check_seconds)
    if done:
        return done
    up = stratify_evaluate_deps(cfg, data)
    require_current(run, "evaluate/done.json", up, job.command("evaluate"))
    t0 = time.perf_counter()
    te = job.te
    write_stratify_report(run, data.images[te], None if labels is None else labels[te])
    done = {"seconds": round(time.perf_counter() - t0, 1)}
    return write_record(run, RECORD, done, deps, OUTPUTS)
