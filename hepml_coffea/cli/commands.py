"""The command line's sub-commands over samples, training, evaluation and runs: each parses its
arguments and calls one function of the package."""

from __future__ import annotations

import argparse
import json
from typing import Any


def _cmd_generate(args: argparse.Namespace) -> int:
    from hepml_coffea.samples import generate

    out = generate(
        args.process, args.events, args.seed, args.out, workers=args.workers,
        pthat_min=args.pthat_min, eta_max=args.eta_max, detector=not args.no_detector,
    )
    print(f"wrote {out}")
    return 0


def _cmd_summary(args: argparse.Namespace) -> int:
    from hepml_coffea.analysis.summary import constituent_summary

    for path in args.files:
        print(json.dumps(constituent_summary(path), indent=2))
    return 0


def _cmd_train(args: argparse.Namespace) -> int:
    from hepml_coffea.training.train import TrainConfig, train

    if args.model is None and args.init_from is None:
        from hepml_coffea.config import ConfigurationError

        msg = "train needs --model NAME (from scratch) or --init-from TAGGER (fine-tuning)"
        raise ConfigurationError(msg)
    if args.init_from is not None:
        from hepml_coffea.artifacts import load_artifact

        parent = load_artifact(args.init_from)
        if parent.classes:  # an imported multi-class model: fine-tuned on its own score's two classes
            from hepml_coffea.training.finetune import finetune

            metrics = finetune(args.init_from, args.signal, args.background, args.out,
                               time_budget_s=args.time_budget or 600.0, epochs=args.epochs or 3,
                               batch_size=args.batch_size or 128, lr=args.lr or 3e-4,
                               max_jets=args.max_jets, seed=args.seed, threads=args.threads, name=args.name)
            print(json.dumps({k: v for k, v in metrics.items() if k != "history"}, indent=2, default=str))
            return 0
        if args.model is None:
            from hepml_coffea.config import ConfigurationError

            msg = f"--init-from {args.init_from}: give --model too (the registry name of its architecture)"
            raise ConfigurationError(msg)
    if args.distill is None:
        args.distill = 0.5 if args.teacher else 0.0
    cfg = TrainConfig(
        model=args.model, epochs=args.epochs or 20, batch_size=args.batch_size or 256, lr=args.lr or 1e-3,
        seed=args.seed, max_jets=args.max_jets, device=args.device, patience=args.patience,
        threads=args.threads, init_from=args.init_from, time_budget_s=args.time_budget or 0.0,
        augment=args.augment, distill=args.distill, distill_temperature=args.temperature,
        model_options=_model_options(args.model_option, args.model),
    )
    metrics = train(args.signal, args.background, args.out, cfg, teacher=args.teacher)
    print(json.dumps(metrics, indent=2))
    return 0


def _model_options(items: list[str], model: str | None) -> dict[str, Any]:
    """``["pool=last", "embed=[]"]`` -> ``{"pool": "last", "embed": []}`` (values read as YAML),
    checked against the registry's arguments of ``model`` before any data is read."""
    import yaml

    from hepml_coffea.config import ConfigurationError
    from hepml_coffea.models import MODEL_REGISTRY

    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            msg = f"--model-option {item!r}: expected KEY=VALUE"
            raise ConfigurationError(msg)
        allowed = MODEL_REGISTRY[model].defaults if model in MODEL_REGISTRY else {}
        if key not in allowed:
            msg = f"--model-option {key}: not an argument of model {model!r} (allowed: {sorted(allowed)})"
            raise ConfigurationError(msg)
        out[key] = yaml.safe_load(value)
    return out


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from hepml_coffea.evaluation.evaluate import run_evaluation
    from hepml_coffea.evaluation.report import format_report

    res = run_evaluation(args.data, args.out, taggers=args.taggers, cache=args.cache, device=args.device,
                         threads=args.threads, update_markdown=args.update_markdown, curve=args.curve)
    print(format_report(res))
    return 0


def _selection(args: argparse.Namespace) -> Any:
    from hepml_coffea.selection import Selection

    return Selection(pt_min=args.pt_min, pt_max=args.pt_max, abs_eta_max=args.eta_max,
                     msd_min=args.msd_min, msd_max=args.msd_max)


def _cmd_run(args: argparse.Namespace) -> int:
    from hepml_coffea.config import RunConfig
    from hepml_coffea.analysis.processor import TaggerProcessor
    from hepml_coffea.batch.run import run_fileset

    proc = TaggerProcessor(taggers=args.taggers, selection=_selection(args), device=args.device,
                           skip_bad_inputs=args.skip_bad_files, save_scores=args.save_scores,
                           backend=args.backend)
    config = RunConfig(executor=args.executor, workers=args.workers, scheduler=args.scheduler,
                       chunksize=args.chunksize, skip_bad_files=args.skip_bad_files,
                       dashboard_address=args.dashboard_address, cluster_options=_batch_options(args),
                       allow_cpu_fallback=args.allow_cpu_fallback)
    run_fileset(args.fileset, proc, config=config, out=args.out)
    return 0


def _cmd_plot(args: argparse.Namespace) -> int:
    from hepml_coffea.analysis.plots import plot_output

    for p in plot_output(args.output, args.outdir):
        print(f"wrote {p}")
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from hepml_coffea.cli.demo import main_job

    main_job(out=args.out, workers=args.workers, events=args.events, executor=args.executor)
    return 0


def _add_run_choices(p: Any) -> None:
    """--backend and the fat-jet selection: for `run` and for the jobs `condor/slurm split` write."""
    p.add_argument("--backend", default="auto", choices=["auto", "onnxruntime", "aoti", "compile", "torch"],
                   help="CPU execution backend of the models (auto: the one recorded in each artifact)")
    sel = p.add_argument_group("fat-jet selection (default: the top-tagging reference window)")
    sel.add_argument("--pt-min", type=float, default=550.0, help="GeV (default 550)")
    sel.add_argument("--pt-max", type=float, default=650.0, help="GeV (default 650)")
    sel.add_argument("--eta-max", type=float, default=2.0, help="|eta| below this (default 2)")
    sel.add_argument("--msd-min", type=float, default=None, help="soft-drop mass above this [GeV]")
    sel.add_argument("--msd-max", type=float, default=None, help="soft-drop mass below this [GeV]")


def _batch_options(args: argparse.Namespace) -> dict[str, Any]:
    """Options of the batch worker jobs (``run --executor slurm/htcondor``) for make_cluster."""
    given = {k: getattr(args, k) for k in ("kind", "cores", "memory", "walltime", "partition", "disk", "gpus",
                                           "env_setup", "log_directory") if getattr(args, k, None) is not None}
    if args.executor not in ("slurm", "htcondor"):
        if given:
            flags = ", ".join("--" + k.replace("_", "-") for k in given)
            msg = f"{flags}: batch worker options need --executor slurm or htcondor (got {args.executor})"
            raise ValueError(msg)
        return {}
    wrong = {"slurm": ("disk",), "htcondor": ("walltime", "partition")}[args.executor]
    bad = [k for k in wrong if k in given]
    if bad:
        msg = f"--{bad[0]} is not an option of --executor {args.executor}"
        raise ValueError(msg)
    return given
