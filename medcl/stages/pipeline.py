"""The whole UFC pipeline over methods x label fractions x seeds, resumable cell by cell."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import numpy as np

from medcl.config import Config, load_config, read_yaml, to_dict
from medcl.data import ImageSet
from medcl.errors import MedclError
from medcl.evaluate import cluster_agreement, format_table, results_markdown
from medcl.rundir import RunDir, atomic_write_text
from medcl.stages._checks import check_result
from medcl.stages._common import check_against_data, finetune_blocker, load_data, say, timed
from medcl.stages._deps import evaluate_deps
from medcl.stages._done import read_payload, reusable
from medcl.stages.cluster import run_cluster
from medcl.stages.features import run_features
from medcl.stages.finetune import cell_dir, run_evaluate_cell, run_finetune
from medcl.stages.pretrain import (
    check_method_applies,
    encoder_path,
    method_or_error,
    run_pretrain,
)
from medcl.train import make_fabric, set_threads, single_device

# What the end of a run writes from the stages' records; nothing else reads them.
SUMMARIES = (
    "results.json",
    "table.md",
    "table.csv",
    "report.md",
    "report.html",
    "stopped.json",
)


def demo_config(quick: bool = False, overrides: list[str] | None = None) -> Config:
    """The packaged demo config (``medcl/configs/demo.yaml``: dsb2018), optionally quick."""
    base = read_yaml(str(resources.files("medcl").joinpath("configs/demo.yaml")))
    if quick:
        quick_tree = read_yaml(str(resources.files("medcl").joinpath("configs/demo-quick.yaml")))
        for section, values in quick_tree.items():
            base.setdefault(section, {}).update(values)
    return load_config(None, overrides, base=base)


def check_launcher(devices: int, nodes: int) -> None:
    """Refuse a launcher (torchrun, srun) that started another number of processes than the
    config asks for: each process would otherwise run the whole command on its own, all of
    them in one run directory."""
    import os

    world = os.environ.get("WORLD_SIZE", "")
    if world.isdigit() and int(world) != devices * nodes:
        raise MedclError(
            f"The launcher started {world} processes (WORLD_SIZE={world}) but run.devices x "
            f"run.num_nodes is {devices} x {nodes} = {devices * nodes}; set run.devices to the "
            "processes on each machine and run.num_nodes to the number of machines."
        )


def prepare(run: RunDir, cfg: Config, distributed: bool = True):
    """Save the resolved config and open the device(s); ``run.devices`` only if ``distributed``."""
    for m in cfg.run.methods:
        method_or_error(m)
    set_threads(cfg.run.num_threads)
    devices = cfg.run.devices if distributed else 1
    nodes = cfg.run.num_nodes if distributed else 1
    if distributed:
        check_launcher(devices, nodes)
    fabric = make_fabric(cfg.run.device, cfg.run.precision, devices, nodes)
    if fabric.is_global_zero:
        run.save_config(to_dict(cfg))
    return fabric


def collect_results(run: RunDir, cfg: Config, data: ImageSet, stage_seconds: dict) -> dict:
    """Gather every finished cell into ``results.json``, ``table.md`` and ``table.csv``."""
    run.retract("stopped.json")  # fine-tuning ran after all (masks added later)
    summary = read_payload(run, "cluster/summary.json") or {}
    agreement = run.read_json("cluster/agreement.json") or {}
    rows = []
    for method in cfg.run.methods:
        pre = None
        for fraction in cfg.run.label_fractions:
            for seed in cfg.run.seeds_for(method):
                cell = cell_dir(run, method, fraction, seed)
                rel = str((cell / "result.json").relative_to(run.path))
                deps = evaluate_deps(cfg, data, method, fraction, seed)
                result = reusable(run, rel, deps, check_result, quiet=True)  # current ones only
                if not result:
                    continue
                ft = read_payload(run, str((cell / "done.json").relative_to(run.path))) or {}
                pre = read_payload(run, f"pretrain/{method}/seed{seed}/done.json") or {}
                rows.append(
                    {
                        **result,
                        "k": summary.get("k"),
                        "n_labelled": ft.get("n_labelled"),
                        "seconds": {
                            "pretrain": pre.get("seconds", 0.0),
                            "finetune": ft.get("seconds"),
                        },
                        "images_per_s": {
                            "pretrain": (pre.get("throughput") or {}).get("images_per_s"),
                            "finetune": (ft.get("throughput") or {}).get("images_per_s"),
                        },
                    }
                )
    results = {
        "rows": rows,
        "class_names": data.class_names,
        "k": summary.get("k"),
        "agreement": {name: {"nmi": a["nmi"], "ari": a["ari"]} for name, a in agreement.items()},
        "stage_seconds": stage_seconds,
    }
    write_results(run, results, cfg.run.methods)
    return results


def write_results(run: RunDir, results: dict, methods: list[str]) -> None:
    """``results.json`` and the Dice table as ``table.md`` and ``table.csv``."""
    run.write_json("results.json", results)
    layout = ((run.load_config_dict() or {}).get("data") or {}).get("layout")
    atomic_write_text(run.file("table.md"), results_markdown(results, methods, layout))
    atomic_write_text(run.file("table.csv"), format_table(results["rows"], methods, fmt="csv"))


def write_agreement(run: RunDir, data: ImageSet) -> dict:
    """``cluster/agreement.json``: the pseudo-classes against the data's reference labels.

    Reference labels (dsb2018's appearance groups) judge the clustering only; they are read
    here, after the pseudo-labels exist, and never by a method.
    """
    if not data.reference_labels:
        return {}
    labels = np.load(run.path / "cluster" / "labels.npy")
    train = data.indices("train")
    agreement = {
        name: cluster_agreement(labels, values[train])
        for name, values in data.reference_labels.items()
    }
    run.write_json("cluster/agreement.json", agreement)
    return agreement


def checked_data(run: RunDir, cfg: Config, need_masks: bool = True) -> ImageSet:
    """The run's data, with every setting that needs the data checked before any training."""
    data = load_data(cfg, cache_dir=run.path / "cache", need_masks=need_masks)
    check_against_data(cfg, data)
    for m in cfg.run.methods:
        check_method_applies(m, data)
    return data


def _pretrain_only(run: RunDir, cfg: Config, fabric) -> dict:
    """What a process other than rank 0 does under DDP: its share of every pretraining."""
    data = checked_data(run, cfg, need_masks=False)  # as on rank 0, so all fail together
    reason = finetune_blocker(cfg, data)
    if reason and not _pretrains(cfg):
        raise MedclError(reason)
    fabric.barrier()  # rank 0 computes features and pseudo-labels meanwhile
    for seed in cfg.run.all_seeds():
        for method in cfg.run.methods:
            if seed not in cfg.run.seeds_for(method):
                continue
            run_pretrain(run, cfg, method, seed, data, fabric)
            fabric.barrier()  # rank 0 fine-tunes meanwhile
    return {"rows": [], "rank": fabric.global_rank}


def _pretrains(cfg: Config) -> list[str]:
    """The methods of ``cfg`` that pretrain an encoder (all but random init)."""
    return [m for m in cfg.run.methods if method_or_error(m).pretrains]


def _stopped(run: RunDir, cfg: Config, reason: str) -> dict:
    """The end of a run that pretrained and cannot fine-tune: the reason and the encoders.

    Written to ``stopped.json`` too; the command line prints the reason as one line.
    """
    encoders = [str(encoder_path(run, m, s)) for m in _pretrains(cfg) for s in cfg.run.seeds_for(m)]
    run.write_json("stopped.json", {"reason": reason, "encoders": encoders})
    return {"rows": [], "stopped": reason, "encoders": encoders}


def run_pipeline(cfg: Config, out: str | Path, make_report: bool = True) -> dict:
    """features -> cluster -> pretrain -> finetune -> evaluate -> report, in ``out``.

    Every stage and every (method, fraction, seed) cell writes a ``done.json`` when it
    finishes, so rerunning the same command after an interruption skips what is done and
    resumes the interrupted cell from its last checkpoint.

    With ``run.devices > 1`` every process runs the pretraining (DDP); the other stages run
    on rank 0 alone, on its own device, while the other processes wait.
    """
    run = RunDir(out)
    run.lock()
    previous = run.read_json("stage_seconds.json") or {}
    fabric = prepare(run, cfg)
    lead = fabric.is_global_zero
    if not lead:
        return _pretrain_only(run, cfg, fabric)
    run.retract(*SUMMARIES)  # written again at the end, from the records of this config
    solo = single_device(fabric, cfg.run.precision)
    seconds: dict = {}
    with timed(seconds, "load"):
        data = checked_data(run, cfg, need_masks=False)
    # Without masks (or without val/test images) the run pretrains and stops there.
    blocker = finetune_blocker(cfg, data)
    if blocker and not _pretrains(cfg):
        raise MedclError(blocker)
    needs_clusters = any(method_or_error(m).uses_pseudo_labels for m in cfg.run.methods)
    say(
        f"{len(data)} images ({', '.join(f'{s} {len(data.indices(s))}' for s in ('train', 'val', 'test'))}), "
        f"{f'{data.num_classes} classes' if data.has_mask.any() else 'no masks'}, "
        f"run directory {run.path}"
    )
    if needs_clusters:
        with timed(seconds, "features"):
            feats = run_features(run, cfg, data, solo)
        say(f"features: {cfg.features.kind} trained in {feats['seconds']:.0f} s")
        with timed(seconds, "cluster"):
            summary = run_cluster(run, cfg, data)
        agreement = write_agreement(run, data)
        nmi = "".join(f"; NMI with {name} {a['nmi']:.2f}" for name, a in agreement.items())
        say(
            f"cluster: k = {summary['k']} pseudo-classes ({summary['method']}), "
            f"sizes {summary['sizes']}{nmi}"
        )
    fabric.barrier()  # the other processes wait for the pseudo-labels
    n_cells = len(cfg.run.label_fractions) * sum(len(cfg.run.seeds_for(m)) for m in cfg.run.methods)
    cell = 0
    for seed in cfg.run.all_seeds():
        for method in cfg.run.methods:
            if seed not in cfg.run.seeds_for(method):
                continue
            with timed(seconds, "pretrain"):
                pre = run_pretrain(run, cfg, method, seed, data, fabric)
            if pre.get("loss"):
                say(
                    f"pretrain {method} seed {seed}: loss {pre['loss'][0]:.3f} -> "
                    f"{pre['loss'][-1]:.3f} ({pre['seconds']:.0f} s)"
                )
            for fraction in [] if blocker else cfg.run.label_fractions:
                cell += 1
                with timed(seconds, "finetune"):
                    ft = run_finetune(run, cfg, method, fraction, seed, data, solo)
                with timed(seconds, "evaluate"):
                    res = run_evaluate_cell(run, cfg, method, fraction, seed, data, solo)
                say(
                    f"[{cell}/{n_cells}] {method} {fraction * 100:g}% labels seed {seed}: "
                    f"val Dice {100 * ft['val_dice']:.1f}, test Dice {100 * res['dice']:.1f} "
                    f"({ft['seconds']:.0f} s)"
                )
            fabric.barrier()  # the next pretraining starts on every process together
    # Seconds spent by earlier, interrupted invocations count too.
    total = {
        k: round(seconds.get(k, 0.0) + previous.get(k, 0.0), 2)
        for k in set(seconds) | set(previous)
    }
    run.write_json("stage_seconds.json", total)
    if blocker:
        stopped = _stopped(run, cfg, blocker)
        if make_report:  # the clustering and the pretraining losses, and why it stopped
            from medcl.report import write_report

            write_report(run, data=data)
        return stopped
    results = collect_results(run, cfg, data, total)
    if make_report:
        from medcl.report import write_report

        with timed(seconds, "report"):
            write_report(run, data=data)
    return results
