"""The ``medcl`` command: one subcommand per stage, plus ``run`` and ``demo``.

Every subcommand reads and writes one run directory. Problems with the user's input are
printed as one sentence on stderr with exit status 2; an interrupted command exits 130 and
can simply be run again to resume.
"""

from __future__ import annotations

import argparse
import errno
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch is imported

from medcl.errors import MedclError  # noqa: E402

EPILOG = """\
examples:
  medcl demo --quick                      # about 1.5 minutes on a 2-core CPU
  medcl demo --out runs/demo              # random vs SimCLR vs UFC on DSB2018 nuclei, 3 seeds
  medcl run my.yaml run.seeds=[0] pretrain.epochs=100
  medcl benchmark benchmark-dsb2018       # 6 methods x 6 label fractions x 5/3 seeds, resumable
  medcl benchmark benchmark-brain-aal     # 7 methods (GLCL and PCL need volumes) on one MRI
  medcl benchmark isic2017 data.root=/data/ISIC2017
  medcl run demo data.layout=dsb2018 data.dataset=null data.root=/data/dsb2018   # Kaggle copy
  medcl segment-prior segment-prior-brain-aal    # whole-brain masks from 5 reference masks
  medcl stratify stratify-mnist           # a config shipped with medcl, by name
  medcl features my.yaml --run runs/a     # then: cluster, pretrain, finetune, evaluate
  medcl pretrain --run runs/a method=ufc seed=0
  medcl export --run runs/a method=ufc seed=0 --out ufc.pt   # weights for MONAI's UNet

Configs are YAML files with sections data, model, features, cluster, pretrain, finetune and
run; any key can be overridden with section.key=value. See README.md for every key.
"""


def _config_args(p: argparse.ArgumentParser, run_required: bool = False) -> None:
    p.add_argument(
        "args",
        nargs="*",
        metavar="CONFIG.yaml|key=value",
        help="a YAML config and/or section.key=value overrides",
    )
    p.add_argument(
        "--run",
        required=run_required,
        metavar="DIR",
        help="run directory to read from and write to",
    )
    _fresh_arg(p)


def _fresh_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--fresh",
        action="store_true",
        help="recompute everything: ignore (and remove) the finished-stage records, "
        "checkpoints and image cache in the run directory",
    )


def _config_command(sub, name: str, **texts) -> argparse.ArgumentParser:
    """A subcommand that takes CONFIG.yaml, key=value overrides and --out DIR."""
    p = sub.add_parser(name, **texts)
    p.add_argument("config", metavar="CONFIG.yaml", help="a YAML file or a packaged name")
    p.add_argument("overrides", nargs="*", metavar="key=value")
    p.add_argument("--out", metavar="DIR", help="run directory (default: runs/<config name>)")
    _fresh_arg(p)
    return p


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="medcl",
        description=(
            "Learn from unlabeled medical images. Cluster-guided contrastive pretraining "
            "(UFC): a beta-VAE embeds the images, agglomerative clustering turns the "
            "embeddings into pseudo-classes, a UNet encoder is pretrained so that images of "
            "the same pseudo-class are positives, and the UNet is fine-tuned for "
            "segmentation with a fraction of the masks, compared with random init, SimCLR, "
            "MoCo v2, BYOL, GLCL, PCL and local discrimination (medcl benchmark). Also: "
            "unsupervised stratification (medcl stratify) and prior-guided segmentation "
            "without target masks (medcl segment-prior)."
        ),
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    from medcl import __version__

    parser.add_argument("--version", action="version", version=f"medcl {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    demo = sub.add_parser(
        "demo",
        help="random init vs SimCLR vs UFC on the built-in DSB2018 nuclei (dsb2018)",
        description="Run the whole pipeline on the built-in dsb2018 data set (664 real "
        "microscopy images of nuclei from the 2018 Data Science Bowl: fluorescence, stained "
        "tissue and brightfield) at a few label fractions and 3 seeds, then print the test "
        "Dice table and the paired differences with 95% confidence intervals. Rerunning the "
        "same command resumes an interrupted demo. The brain MRI demo of earlier versions "
        "is `medcl run demo-brain-aal`.",
    )
    demo.add_argument(
        "--out", default="runs/demo", metavar="DIR", help="run directory (default: runs/demo)"
    )
    demo.add_argument(
        "--quick",
        action="store_true",
        help="one seed, one label fraction and short schedules (about 1.5 minutes)",
    )
    demo.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides")
    _fresh_arg(demo)

    _config_command(
        sub,
        "run",
        help="the whole pipeline from a YAML config",
        description="features -> cluster -> pretrain -> finetune -> evaluate -> report. "
        "Images without masks (or data.val_fraction=0 data.test_fraction=0) are pretrained on "
        "and the run stops before fine-tuning with one line saying why (exit 0); `medcl "
        "export` then hands the encoders to MONAI.",
    )
    _config_command(
        sub,
        "benchmark",
        help="every method x label fraction x seed (x fold): the paper's comparison table",
        description=(
            "Pretrain each method once per seed, fine-tune it at every label fraction, and "
            "write results.json, table.md, table.csv (mean (± std) test Dice %), "
            "plots/dice.png and report.html. Defaults: 5 seeds and every method that applies "
            "to the data (glcl and pcl need 3-D volumes). With data.folds=K the grid runs on "
            "each of K cross-validation folds. Rerunning the same command resumes: finished "
            "cells are never recomputed."
        ),
    )
    _config_command(
        sub,
        "segment-prior",
        help="masks of a structure from a few reference masks (local discrimination + prior)",
        description=(
            "Train local discrimination (per-pixel embeddings and clusters on a UNet) on the "
            "training images without their masks, guiding one cluster towards a structure by "
            "the location/area/spread statistics of prior.references masks drawn from the "
            "training split. Writes the test masks (masks/test_masks.npy), their Dice when "
            "the test images have masks (results.json) and report.html."
        ),
    )

    for name, text in [
        ("features", "stage 1: train the beta-VAE and save the embeddings"),
        ("cluster", "stage 2: cluster the embeddings into pseudo-classes (k from the elbow)"),
        ("pretrain", "stage 3: pretrain the encoder (method=NAME seed=S)"),
        ("finetune", "stage 4: fine-tune on a fraction of the masks (method=, fraction=, seed=)"),
        ("evaluate", "test Dice of every fine-tuned model, results table and report"),
    ]:
        p = sub.add_parser(
            name,
            help=text,
            description=text + ". Reads/writes the run directory; "
            "the first stage needs a config, later ones reuse the run's config.",
        )
        _config_args(p, run_required=True)

    export = sub.add_parser(
        "export",
        help="write a pretrained encoder's weights for a MONAI network (UNet or AutoEncoder)",
        description="Write the encoder that `method` pretrained with `seed` in a run "
        "directory as a state dict (.pt) under the parameter names of "
        "monai.networks.nets.UNet (network=unet, the default) or AutoEncoder "
        "(network=autoencoder), and the network's settings beside it (FILE.json). Load it "
        "with net.load_state_dict(torch.load(FILE, weights_only=True), strict=False). In "
        "Python, medcl.load_encoder(run_dir, method, seed) returns the encoder itself.",
        epilog="examples:\n"
        "  medcl export --run runs/my method=ufc seed=0 --out ufc_unet.pt\n"
        "  medcl export --run runs/my method=simclr network=autoencoder",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    export.add_argument(
        "args", nargs="*", metavar="method=NAME|seed=S|network=unet", help="what to export"
    )
    export.add_argument("--run", required=True, metavar="DIR", help="the run directory")
    export.add_argument("--out", metavar="FILE", help="default: DIR/export/METHOD_seedS_NETWORK.pt")

    _stratify_parsers(sub)
    return parser


STRATIFY_STAGES = ("warmup", "refine", "embed", "cluster", "decoder", "evaluate", "report")


def _stratify_parsers(sub) -> None:
    """``medcl stratify [run] ...`` (the stages) and ``medcl stratify assign`` (new images)."""
    strat = sub.add_parser(
        "stratify",
        help="unsupervised stratification with a contrastive autoencoder (Ferrante et al.)",
        description="Train a contrastive autoencoder (NT-Xent + 0.1 x reconstruction, LARS), "
        "optionally refine its encoder with SCAN (refine.epochs > 0: neighbours share a "
        "confident cluster), cluster its latent space (cluster.method kmeans, ward, spectral or "
        "merge; k fixed or by "
        "cluster.k_rule: elbow, silhouette, stability or eigengap), decode the prototypes with a "
        "conditional decoder and judge the clusters against labels (majority mapping, kNN, "
        "linear probe). Seven stages, each with its done.json in the run directory (refine only "
        "with refine.epochs > 0): "
        f"{' -> '.join(STRATIFY_STAGES)}. A rerun reuses every finished stage and recomputes "
        "the one whose settings changed and those after it (one line each says why). Writes "
        "config.yaml, assignments.csv, prototypes.npy, metrics.json/.md and report.html.",
        epilog="examples:\n"
        "  medcl stratify stratify-mnist --out runs/mnist        # the packaged MNIST config\n"
        "  medcl stratify stratify-mnist warmup.epochs=10 cluster.k=10\n"
        "  medcl stratify stratify-mnist data.dataset=dsb2018 'data.image_size=[64,64]'\n"
        "  medcl stratify stratify-mnist data.test_seed=1 \"data.drop={'8': 0.5}\"  # a resample\n"
        "  medcl stratify --run runs/mnist --stage cluster cluster.k=11   # one stage alone\n"
        "  medcl stratify assign --run runs/mnist a.png b.png [--csv out.csv]\n\n"
        "`medcl stratify run --help` lists the options (--out, --run, --stage, --fresh).",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    which = strat.add_subparsers(dest="stratify_command", metavar="run|assign")
    run = which.add_parser(
        "run",
        help="run the stages (the default: `medcl stratify CONFIG` is `medcl stratify run CONFIG`)",
    )
    run.add_argument(
        "args",
        nargs="*",
        metavar="CONFIG.yaml|key=value",
        help="a YAML config (a path or a packaged name) and/or section.key=value overrides",
    )
    run.add_argument("--out", metavar="DIR", help="run directory (default: runs/<config name>)")
    run.add_argument(
        "--run",
        metavar="DIR",
        help="an existing run directory: its saved config.yaml, then the overrides",
    )
    run.add_argument(
        "--stage",
        choices=STRATIFY_STAGES,
        help="run this stage alone; the stages before it must be finished and current",
    )
    _fresh_arg(run)
    assign = which.add_parser(
        "assign",
        help="assign image files to the strata of a finished run",
        description="Give each image file the stratum of a finished `medcl stratify` run "
        "(nearest prototype, or cluster.assign=knn), converted like a folder load.",
    )
    assign.add_argument("images", nargs="*", metavar="IMAGE", help="image files")
    assign.add_argument("--run", metavar="DIR", help="the finished stratify run directory")
    assign.add_argument("--csv", metavar="FILE", help="also write the assignments here")


def _stratify_argv(argv: list[str]) -> list[str]:
    """``stratify CONFIG ...`` is ``stratify run CONFIG ...``: run is the default subcommand."""
    if argv and argv[0] == "stratify":
        if len(argv) == 1 or argv[1] not in ("run", "assign", "-h", "--help"):
            return ["stratify", "run", *argv[1:]]
    return argv


def _split_args(items: list[str]) -> tuple[str | None, list[str]]:
    """A config file (a path, or the name of a packaged config) and key=value overrides."""
    from medcl.config import packaged_config

    config = None
    overrides = []
    for item in items:
        if "=" not in item and not Path(item).exists() and packaged_config(item):
            item = packaged_config(item) or item
        if "=" not in item and (item.endswith((".yaml", ".yml")) or Path(item).exists()):
            if config is not None:
                raise MedclError(f"Two config files given ('{config}' and '{item}'); give one.")
            config = item
        else:
            overrides.append(item)
    return config, overrides


def _open_run(path: str, fresh: bool = False, shared: bool = False):
    """The run directory ``path``, locked for this process; ``fresh``: its records removed."""
    from medcl.rundir import RunDir, say

    run = RunDir(path)
    run.lock(shared=shared)
    if fresh:
        n = run.clear_records()
        say(f"--fresh: removed {n} finished-stage records, checkpoints and caches from {path}")
    from medcl._load import refuse_unsafe_files

    refuse_unsafe_files(run.path)  # before any stage runs, not when one reaches the file
    return run


def _check_stage_args(picked: dict[str, str]) -> None:
    """``method=``, ``seed=`` and ``fraction=`` of a stage command, before any path is built."""
    from medcl.methods import METHODS

    if "method" in picked and picked["method"] not in METHODS:
        raise MedclError(
            f"Unknown method '{picked['method']}' (method=); choose one of {sorted(METHODS)}."
        )
    if "seed" in picked:
        raw = picked["seed"].strip()
        if not raw.isdigit():
            raise MedclError(f"seed={raw} is not a seed; give a whole number >= 0, e.g. seed=0.")
        picked["seed"] = str(int(raw))
    if "fraction" in picked:
        raw = picked["fraction"].strip()
        try:
            value = float(raw)
        except ValueError:
            value = float("nan")
        if not 0 < value <= 1:  # NaN fails this too
            raise MedclError(
                f"fraction={raw} is not a label fraction in (0, 1]; use e.g. fraction=0.05 for "
                "5% of the masks."
            )


def _stage_config(
    run_dir: str, items: list[str], stage_keys: tuple[str, ...] = (), fresh: bool = False
):
    """Config for a single-stage command: the run's saved config, a file, and overrides."""
    from medcl.config import load_config

    config, overrides = _split_args(items)
    picked = {}
    rest = []
    for o in overrides:
        key = o.split("=", 1)[0]
        if key in stage_keys:
            picked[key] = o.split("=", 1)[1]
        else:
            rest.append(o)
    _check_stage_args(picked)
    run = _open_run(run_dir, fresh)
    saved = run.load_config_dict()
    if config is None and saved is None:
        raise MedclError(
            f"Run directory '{run_dir}' has no config.yaml yet; give a config file, e.g. "
            f"`medcl features my.yaml --run {run_dir}`."
        )
    return run, load_config(config, rest, base=None if config else saved), picked


def _cmd_demo(args) -> int:
    from medcl.stages.pipeline import demo_config

    cfg = demo_config(args.quick, _no_second_config(args.overrides, "demo"))
    _open_run(args.out, args.fresh)
    return _run_and_print(cfg, args.out)


def _no_second_config(overrides: list[str], first: str | None) -> list[str]:
    """The overrides, refusing a second YAML file among them (one sentence naming both)."""
    for o in overrides:
        if "=" not in o and (o.endswith((".yaml", ".yml")) or Path(o).is_file()):
            raise MedclError(
                f"Two config files given ('{first}' and '{o}'); give one, and put other "
                "settings in it or as key=value overrides."
            )
    return overrides


def _config_and_out(args) -> tuple[str, str]:
    """The config file (a path or a packaged name) and the run directory of a command."""
    from medcl.config import packaged_config

    config = args.config
    if not Path(config).exists():
        config = packaged_config(config) or config
    return config, args.out or str(Path("runs") / Path(args.config).stem)


def _print_results(results: dict, over: str, out: str, t0: float, layout: str | None) -> int:
    """The Dice table, the paired comparisons with random init and SimCLR, and the files."""
    from medcl.evaluate import comparisons_markdown, format_table, label_trend_flags, paper_note

    if results.get("rank"):  # another DDP process; rank 0 prints the table
        return 0
    if results.get("stopped"):  # pretrained, nothing to fine-tune on: one line, not an error
        print(
            f"Pretrained {len(results['encoders'])} encoders in {Path(out) / 'pretrain'} and "
            f"stopped before fine-tuning: {results['stopped']}"
        )
        return 0
    methods = list(dict.fromkeys(r["method"] for r in results["rows"]))
    k = f", k = {results['k']} pseudo-classes" if results.get("k") else ""
    print(f"\nTest Dice % (mean ± std over {over}){k}:\n")
    print(format_table(results["rows"], methods))
    print(comparisons_markdown(results["rows"]))
    flags = label_trend_flags(results["rows"])
    if flags:
        print("Dice that does not rise with more labels:")
        for line in flags:
            print(f"  {line}")
        print()
    note = paper_note(layout)
    if note:
        print(note)
    minutes = (time.perf_counter() - t0) / 60
    print(
        f"Finished in {minutes:.1f} min. Table: {Path(out) / 'table.md'}, report: "
        f"{Path(out) / 'report.html'}"
    )
    return 0


def _run_and_print(cfg, out) -> int:
    from medcl.stages.pipeline import run_pipeline

    t0 = time.perf_counter()
    results = run_pipeline(cfg, out)
    return _print_results(results, f"seeds {cfg.run.seeds}", out, t0, cfg.data.layout)


def _cmd_run(args) -> int:
    from medcl.config import load_config

    config, out = _config_and_out(args)
    cfg = load_config(config, _no_second_config(args.overrides, args.config))
    _open_run(out, args.fresh)
    return _run_and_print(cfg, out)


def _cmd_benchmark(args) -> int:
    from medcl.stages.benchmark import benchmark_config, run_benchmark

    config, out = _config_and_out(args)
    cfg, named = benchmark_config(config, _no_second_config(args.overrides, args.config))
    _open_run(out, args.fresh)
    t0 = time.perf_counter()
    results = run_benchmark(cfg, out, methods_named=named)
    folds = f" x {results['folds']} folds" if results.get("folds") else ""
    seeds = sorted({len(cfg.run.seeds_for(m)) for m in cfg.run.methods})
    over = "/".join(map(str, seeds)) + f" seeds{folds}"
    return _print_results(results, over, out, t0, cfg.data.layout)


def _cmd_segment_prior(args) -> int:
    from medcl.config import load_config
    from medcl.stages.segment_prior import run_segment_prior

    config, out = _config_and_out(args)
    cfg = load_config(config, _no_second_config(args.overrides, args.config))
    _open_run(out, args.fresh)
    results = run_segment_prior(cfg, out)
    if results.get("dice"):
        val = results.get("val_dice") or {}
        print("\nDice % of the structure       validation   test")
        for name, d in results["dice"].items():
            v = f"{100 * val[name]:5.1f}" if name in val else "     "
            print(f"  {name:30s} {v}   {100 * d:5.1f}")
    print(
        f"Finished in {results['seconds'] / 60:.1f} min. Masks: {Path(out) / 'masks'}, "
        f"report: {Path(out) / 'report.html'}"
    )
    return 0


def _cmd_stage(args) -> int:
    from medcl.stages._common import check_against_data, load_data
    from medcl.stages.pipeline import prepare

    keys = {"pretrain": ("method", "seed"), "finetune": ("method", "fraction", "seed")}
    run, cfg, picked = _stage_config(args.run, args.args, keys.get(args.command, ()), args.fresh)
    fabric = prepare(run, cfg, distributed=args.command == "pretrain")  # DDP pretrains only
    # features, cluster and pretrain learn without labels: images without masks will do
    need_masks = args.command in ("finetune", "evaluate")
    data = load_data(cfg, cache_dir=run.path / "cache", need_masks=need_masks)
    check_against_data(cfg, data)
    seed = int(picked.get("seed", cfg.run.seeds[0]))
    if args.command == "features":
        from medcl.stages.features import run_features

        done = run_features(run, cfg, data, fabric)
        print(
            f"Embeddings of {len(data.indices('train'))} images in {run.path / 'features'} "
            f"({done['seconds']:.0f} s)."
        )
    elif args.command == "cluster":
        from medcl.stages.cluster import run_cluster

        s = run_cluster(run, cfg, data)
        print(f"k = {s['k']} pseudo-classes ({s['method']}), sizes {s['sizes']}.")
    elif args.command == "pretrain":
        from medcl.stages.pretrain import run_pretrain

        method = picked.get("method", "ufc")
        done = run_pretrain(run, cfg, method, seed, data, fabric)
        if fabric.is_global_zero:
            print(f"Pretrained {method} (seed {seed}) in {done['seconds']:.0f} s.")
    elif args.command == "finetune":
        from medcl.stages.finetune import run_finetune

        method = picked.get("method", "ufc")
        fraction = float(picked.get("fraction", cfg.run.label_fractions[0]))
        done = run_finetune(run, cfg, method, fraction, seed, data, fabric)
        print(
            f"Fine-tuned {method} on {done['n_labelled']} masks: best validation Dice "
            f"{100 * done['val_dice']:.1f}%."
        )
    else:
        from medcl.evaluate import format_table
        from medcl.report import write_report
        from medcl.stages.finetune import cell_dir, run_evaluate_cell
        from medcl.stages.pipeline import collect_results

        for m in cfg.run.methods:
            for f in cfg.run.label_fractions:
                for s in cfg.run.seeds_for(m):
                    if (cell_dir(run, m, f, s) / "done.json").exists():  # fine-tuned
                        run_evaluate_cell(run, cfg, m, f, s, data, fabric)
        results = collect_results(run, cfg, data, run.read_json("stage_seconds.json") or {})
        if not results["rows"]:
            raise MedclError(f"No fine-tuned model in '{run.path}'; run `medcl finetune` first.")
        write_report(run, data=data)
        print(format_table(results["rows"], cfg.run.methods))
    return 0


def _cmd_export(args) -> int:
    from medcl.stages.export import NETWORKS, export_encoder

    picked = {"method": "ufc", "seed": "0", "network": "unet"}
    for item in args.args:
        key, sep, value = item.partition("=")
        if not sep or key not in picked:
            raise MedclError(
                f"`medcl export` takes method=NAME, seed=S and network={'|'.join(NETWORKS)}, "
                f"not '{item}'."
            )
        picked[key] = value.strip()
    _check_stage_args(picked)
    if not Path(args.run).is_dir():
        raise MedclError(f"The run directory '{args.run}' does not exist; check --run.")
    _open_run(args.run, shared=True)  # no run rewrites the encoder meanwhile
    method, seed, network = picked["method"], int(picked["seed"]), picked["network"]
    out = args.out or str(Path(args.run) / "export" / f"{method}_seed{seed}_{network}.pt")
    settings = export_encoder(args.run, method, seed, out, network)
    name = "UNet" if network == "unet" else "AutoEncoder"
    extra = ", out_channels=<classes>" if network == "unet" else ""
    print(
        f"Wrote {out}: load it into monai.networks.nets.{name}(**settings{extra}) with "
        f"load_state_dict(torch.load('{out}', weights_only=True), strict=False); settings "
        f"{settings} (also in {out}.json)."
    )
    return 0


def _cmd_stratify(args) -> int:
    if args.stratify_command == "assign":
        from medcl.stages.stratify import assign

        if not args.run:
            raise MedclError("`medcl stratify assign` needs --run DIR, a finished stratify run.")
        if Path(args.run).is_dir():
            _open_run(args.run, shared=True)  # no stratify run rewrites it meanwhile
        rows = assign(args.run, args.images, args.csv)
        for r in rows:
            print(f"{r['path']}\tcluster {r['cluster']}\tdistance {r['distance']:.4f}")
        return 0
    from medcl.stages.stratify import load_stratify_config, run_stratify

    config, overrides = _split_args(list(args.args))
    if args.run and args.out and Path(args.run) != Path(args.out):
        raise MedclError("Give the run directory once: --run DIR or --out DIR, not both.")
    out = args.run or args.out or str(Path("runs") / (Path(config).stem if config else "stratify"))
    if args.run and config is None:  # the run's own config, then the overrides
        config = str(Path(args.run) / "config.yaml")
        if not Path(config).is_file():
            raise MedclError(
                f"Run directory '{args.run}' has no config.yaml yet; give a config file, e.g. "
                f"`medcl stratify stratify-mnist --out {args.run}`."
            )
    cfg = load_stratify_config(config, overrides)
    _open_run(out, args.fresh)
    result = run_stratify(cfg, out, args.stage)
    if args.stage not in (None, "evaluate", "report"):
        print(f"Stage {args.stage} finished in {out}.")
        return 0
    print((Path(out) / "metrics.md").read_text())
    seconds = result.get("seconds", {}).get("total", 0) if args.stage is None else 0
    print(f"Finished in {seconds / 60:.1f} min. Report: {Path(out) / 'report.html'}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    argv = _stratify_argv(list(sys.argv[1:] if argv is None else argv))
    # Overrides may come after options (`--out DIR key=value`): argparse leaves those over.
    args, extra = parser.parse_known_args(argv)
    if extra:
        target = next((t for t in ("overrides", "args", "images") if hasattr(args, t)), "args")
        if not hasattr(args, target) or any(e.startswith("-") for e in extra):
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
        getattr(args, target).extend(extra)
    if args.command is None:
        parser.print_help()
        return 0
    handlers = {
        "demo": _cmd_demo,
        "run": _cmd_run,
        "benchmark": _cmd_benchmark,
        "segment-prior": _cmd_segment_prior,
        "stratify": _cmd_stratify,
        "export": _cmd_export,
    }
    from medcl._lock import release_all

    try:
        return handlers.get(args.command, _cmd_stage)(args)
    except MedclError as e:
        print(f"medcl: error: {e}", file=sys.stderr)
        return 2
    except OSError as e:
        if e.errno not in _USER_ERRNOS:
            raise
        from medcl.rundir import write_error

        print(f"medcl: error: {write_error(e.filename or '?', e)}", file=sys.stderr)
        return 2
    except RuntimeError as e:
        if type(e).__name__ != "OutOfMemoryError":  # torch.OutOfMemoryError: a GPU's
            raise
        print(
            "medcl: error: The GPU ran out of memory; lower data.image_size, the batch sizes "
            "(pretrain.batch_size, finetune.batch_size, features.batch_size) or "
            "model.channels, then run the same command again to resume.",
            file=sys.stderr,
        )
        return 2
    except KeyboardInterrupt:
        print("\nmedcl: interrupted; run the same command again to resume.", file=sys.stderr)
        return 130
    finally:
        release_all()


# A full disk or a folder the user cannot write: theirs to fix, so one sentence, no traceback.
_USER_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM}


if __name__ == "__main__":
    sys.exit(main())
