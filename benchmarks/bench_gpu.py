"""The GPU check, as one prepared command: every method's step on a CUDA device, then a short
``medcl run`` end to end on it.

Usage (on a machine with a CUDA GPU; about 3 minutes on one H200)::

    python benchmarks/bench_gpu.py [--out runs/bench-gpu] [--size 192] [--batch 64]

1. ``benchmarks/bench_step.py --device cuda --precision bf16-mixed --size 192 --batch 64
   --sync-check --channels-last --repeats 8``: each pretraining method's step and a
   fine-tuning step, images/s of the whole step (inline, and with the batch assembled ahead
   on a worker thread as ``run.prefetch`` does) and of the raw model step on ready tensors,
   their ratios, and the implicit host-device synchronisations one whole step makes (0
   expected).
2. The same at ``--precision 32-true``, so that bf16-mixed's gain is a ratio from one run.
3. ``medcl demo --quick run.device=cuda run.precision=bf16-mixed``: the quick demo
   (features, clustering, pretraining, fine-tuning, report) end to end on the device, timed.

Everything goes to ``OUT``: ``steps-bf16.json``, ``steps-fp32.json``, the run directory
``OUT/demo-quick`` and ``summary.json`` (what the README quotes). Without a CUDA device the
script says so in one line and exits 2: nothing here runs on a CPU (``bench_step.py`` does).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch  # noqa: E402

HERE = Path(__file__).resolve().parent


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default="runs/bench-gpu")
    ap.add_argument("--size", type=int, default=192)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=8)  # rounds of 4 steps, 3 ways
    a = ap.parse_args(argv)
    if not torch.cuda.is_available():
        print(
            "bench_gpu.py: no CUDA device is visible to PyTorch here; run it on a machine "
            "with a GPU (benchmarks/bench_step.py measures the same steps on a CPU).",
            file=sys.stderr,
        )
        return 2
    sys.path.insert(0, str(HERE))
    import bench_step

    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    common = ["--device", "cuda", "--size", str(a.size), "--batch", str(a.batch)]
    common += ["--repeats", str(a.repeats), "--channels-last"]
    summary: dict = {"device": torch.cuda.get_device_name(0), "torch": torch.__version__}
    for tag, precision in (("bf16", "bf16-mixed"), ("fp32", "32-true")):
        print(f"== steps, {precision}", flush=True)
        extra = ["--sync-check"] if tag == "bf16" else []
        rows = bench_step.main(
            common + ["--precision", precision, "--json", str(out / f"steps-{tag}.json")] + extra
        )
        summary[f"steps_{tag}"] = rows
    print("== medcl demo --quick on the device", flush=True)
    t0 = time.perf_counter()
    cmd = [sys.executable, "-m", "medcl", "demo", "--quick", "run.device=cuda"]
    cmd += ["run.precision=bf16-mixed", "--out", str(out / "demo-quick"), "--fresh"]
    rc = subprocess.call(cmd)
    summary["demo_quick"] = {"returncode": rc, "seconds": round(time.perf_counter() - t0, 1)}
    results = out / "demo-quick" / "results.json"
    if results.exists():
        summary["demo_quick"]["results"] = json.loads(results.read_text())
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    print(
        f"summary: {out / 'summary.json'}; demo-quick exit {rc} in "
        f"{summary['demo_quick']['seconds']} s"
    )
    return 0 if rc == 0 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
