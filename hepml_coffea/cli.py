"""``hepml-coffea``: a thin command-line front over importable functions.

Sub-commands: ``generate``, ``summary``, ``train``, ``run``, ``plot``, ``demo``,
``import weaver|torchscript|onnx``, ``export weaver``, ``taggers``, ``evaluate``, ``condor``, ``slurm``.
Each one parses arguments and calls one function of the package; nothing here is
needed to use the package from analysis code.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from typing import Any

from hepml_coffea.config import EXECUTORS


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
    )
    metrics = train(args.signal, args.background, args.out, cfg, teacher=args.teacher)
    print(json.dumps(metrics, indent=2))
    return 0


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from hepml_coffea.evaluation.evaluate import run_evaluation
    from hepml_coffea.evaluation.report import format_report

    res = run_evaluation(args.data, args.out, taggers=args.taggers, cache=args.cache, device=args.device,
                         threads=args.threads, update_markdown=args.update_markdown)
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
    from hepml_coffea.demo import main_job

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


def _cmd_condor_split(args: argparse.Namespace) -> int:
    from hepml_coffea.batch.htcondor import write_jobs

    paths = write_jobs(
        args.fileset, args.outdir, files_per_job=args.files_per_job, n_jobs=args.n_jobs,
        taggers=args.taggers, chunksize=args.chunksize, python=args.python, env_setup=args.env_setup or [],
        request_cpus=args.request_cpus, request_memory=args.request_memory, request_disk=args.request_disk,
        request_gpus=args.request_gpus, device=args.device, skip_bad_files=args.skip_bad_files,
        transfer_taggers=args.transfer_taggers, selection=_selection(args), backend=args.backend,
    )
    print(f"wrote {len(paths['jobs'])} job fileset(s), {paths['script']} and {paths['submit']}")
    print(f"submit with:  cd {paths['submit'].parent} && condor_submit {paths['submit'].name}")
    return 0


def _cmd_condor_merge(args: argparse.Namespace) -> int:
    from hepml_coffea.batch.core import merge_outputs

    merged = merge_outputs(args.outputs, out=args.out)
    print(merged.get("run", merged)["report"])  # {datasets, run} layout (or an old flat output)
    print(f"wrote {args.out}")
    return 0


def _cmd_condor_cluster_script(args: argparse.Namespace) -> int:
    from hepml_coffea.batch.htcondor import htcondor_job_script

    print(htcondor_job_script(
        kind=args.kind, cores=args.cores, memory=args.memory, disk=args.disk, gpus=args.gpus,
        env_setup=args.env_setup or [], python=args.python, log_directory=args.log_directory,
    ))
    return 0


# --- batch clusters: `run --executor slurm/htcondor` options and `slurm` (issue 15, batch helper)
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


def _cmd_slurm_split(args: argparse.Namespace) -> int:
    from hepml_coffea.batch.slurm import submit_array, write_array_jobs

    paths = write_array_jobs(
        args.fileset, args.outdir, files_per_job=args.files_per_job, n_jobs=args.n_jobs, taggers=args.taggers,
        chunksize=args.chunksize, python=args.python, env_setup=args.env_setup or [],
        cpus_per_task=args.cpus_per_task, memory=args.memory, walltime=args.walltime, partition=args.partition,
        account=args.account, gpus=args.gpus, max_parallel=args.max_parallel, device=args.device,
        skip_bad_files=args.skip_bad_files, selection=_selection(args), backend=args.backend,
    )
    print(f"wrote {len(paths['jobs'])} task fileset(s) and the job array {paths['script']}")
    if args.submit:
        print(f"submitted array job {submit_array(paths['script'])}")
    else:
        print(f"submit with:  sbatch {paths['script']}")
    print(f"then merge:   hepml-coffea slurm merge {paths['script'].parent} --out merged.coffea")
    return 0


def _cmd_slurm_merge(args: argparse.Namespace) -> int:
    from hepml_coffea.batch.core import merge_job_dir
    from hepml_coffea.analysis.histograms import datasets_of

    merged = merge_job_dir(args.jobdir, out=args.out, allow_incomplete=args.allow_incomplete)
    meta = merged.get("run", merged)
    print(meta["report"])
    missing = meta.get("missing_jobs", [])
    for m in missing:
        print(f"  missing job {m['id']} ({m['state']}): log {m['log']}", file=sys.stderr)
    print(f"wrote {args.out} ({len(datasets_of(merged))} dataset(s))")
    return 0


def _cmd_slurm_cluster_script(args: argparse.Namespace) -> int:
    from hepml_coffea.batch.slurm import slurm_job_script

    print(slurm_job_script(
        kind=args.kind, cores=args.cores, memory=args.memory, walltime=args.walltime, partition=args.partition,
        account=args.account, gpus=args.gpus, env_setup=args.env_setup or [], python=args.python,
        log_directory=args.log_directory,
    ))
    return 0


def _add_slurm_parser(sub: Any) -> None:
    sl = sub.add_parser("slurm", help="Slurm: split a fileset into a job array, merge its outputs, "
                                      "show a Dask worker job")
    ssub = sl.add_subparsers(dest="slurm_command", required=True)
    ss = ssub.add_parser("split", help="write per-task filesets and a job array script (sbatch --array) into OUTDIR")
    ss.add_argument("fileset", help="fileset JSON")
    ss.add_argument("--outdir", required=True)
    how = ss.add_mutually_exclusive_group()
    how.add_argument("--files-per-job", type=int, default=1)
    how.add_argument("--n-jobs", type=int, default=None)
    ss.add_argument("--taggers", nargs="+", default=None, help="shipped tagger names or artifact paths")
    ss.add_argument("--chunksize", type=int, default=10000)
    ss.add_argument("--device", default="auto")
    ss.add_argument("--skip-bad-files", action="store_true")
    _add_run_choices(ss)
    ss.add_argument("--python", default=None, help="python on the compute nodes (default: hepml-coffea on PATH)")
    ss.add_argument("--env-setup", action="append", default=None, metavar="LINE",
                    help="shell line run before the task (repeatable), e.g. '. /path/venv/bin/activate'")
    ss.add_argument("--cpus-per-task", type=int, default=1)
    ss.add_argument("--memory", default="4GB")
    ss.add_argument("--walltime", default="01:00:00", help="HH:MM:SS or D-HH:MM:SS")
    ss.add_argument("--partition", default=None)
    ss.add_argument("--account", default=None)
    ss.add_argument("--gpus", type=int, default=0, help="GPUs per task (--gres=gpu:N)")
    ss.add_argument("--max-parallel", type=int, default=None, help="at most this many tasks at once (--array=..%%N)")
    ss.add_argument("--submit", action="store_true", help="also run sbatch")
    ss.set_defaults(func=_cmd_slurm_split)
    sm = ssub.add_parser("merge", help="merge the outputs of a job folder (slurm or condor split); "
                                       "refuses when a job has no output unless --allow-incomplete")
    sm.add_argument("jobdir")
    sm.add_argument("--out", required=True)
    sm.add_argument("--allow-incomplete", action="store_true",
                    help="merge the jobs that finished; the missing ones are listed in the output")
    sm.set_defaults(func=_cmd_slurm_merge)
    sc = ssub.add_parser("cluster-script", help="print the batch script of one Dask worker job")
    sc.add_argument("--kind", choices=["cpu", "gpu"], default="cpu")
    sc.add_argument("--cores", type=int, default=1)
    sc.add_argument("--memory", default="4GB")
    sc.add_argument("--walltime", default="01:00:00")
    sc.add_argument("--partition", default=None)
    sc.add_argument("--account", default=None)
    sc.add_argument("--gpus", type=int, default=1)
    sc.add_argument("--python", default=None)
    sc.add_argument("--log-directory", default=None)
    sc.add_argument("--env-setup", action="append", default=None, metavar="LINE")
    sc.set_defaults(func=_cmd_slurm_cluster_script)


def _cmd_import_weaver(args: argparse.Namespace) -> int:
    from hepml_coffea.weaver import import_weaver

    path = import_weaver(args.model, name=args.name, out=args.out, preprocess=args.preprocess,
                         data_config=args.data_config, score=args.score, branch_map=args.branch_map,
                         license_file=args.license, provenance=args.provenance)
    _describe(path)
    return 0


def _cmd_import_byo(args: argparse.Namespace) -> int:
    """``import torchscript|onnx``: seal, run once on the bundled CMS sample, summarise."""
    from pathlib import Path

    from hepml_coffea.artifacts import import_onnx, import_torchscript
    from hepml_coffea.config import ConfigurationError
    from hepml_coffea.representations import InputSpec
    from hepml_coffea.selection import TrainingDomain

    spec_path = Path(args.spec)
    if not spec_path.is_file():
        msg = f"--spec {spec_path} does not exist (the input spec YAML: kind, features, length, ...)"
        raise ConfigurationError(msg)
    spec = InputSpec.from_yaml(spec_path.read_text())
    window = (args.pt_min, args.pt_max, args.abs_eta_max)
    domain = None if all(x is None for x in window) and args.sample is None else TrainingDomain(
        pt_min=args.pt_min, pt_max=args.pt_max, abs_eta_max=args.abs_eta_max, sample=args.sample or "unknown")
    out = Path(args.out or args.name)
    importer = import_torchscript if args.format == "torchscript" else import_onnx
    importer(args.model, spec, out, name=args.name, domain=domain)
    _describe(out)
    _check_on_bundled_sample(out)
    return 0


def _check_on_bundled_sample(path: Any) -> None:
    """Score the bundled CMS PFNano sample with a freshly imported tagger; print a summary."""
    from importlib import resources

    import numpy as np

    from hepml_coffea.io import load_events
    from hepml_coffea.scoring import FatJetTagger

    sample = resources.files("hepml_coffea") / "data" / "cms_pfnano.root"
    tagger = FatJetTagger([str(path)], device="cpu")
    result = tagger.score(load_events(str(sample)))
    s = next(iter(result.scores.values()))
    s = s[np.isfinite(s)]
    c = result.counts
    if not len(s):
        print(f"  bundled CMS sample ({sample.name}): no jet scored ({c})")
        return
    q = np.quantile(s, [0.0, 0.5, 1.0])
    dom = next(iter(result.in_domain.values()))
    inside = "" if dom is None else f"; {int(np.sum(dom & np.isfinite(next(iter(result.scores.values())))))} inside its domain"
    print(f"  bundled CMS sample ({sample.name}): {c['scored']} of {result.n_fatjets} fat jets scored{inside}; "
          f"score min {q[0]:.4f} / median {q[1]:.4f} / max {q[2]:.4f}, mean {float(np.mean(s)):.4f}")


def _cmd_taggers(args: argparse.Namespace) -> int:
    """``taggers``: one line per shipped tagger (or the given artifacts)."""
    from hepml_coffea.artifacts import load_artifact, shipped_taggers

    names = args.taggers or list(shipped_taggers())
    rows = []
    for n in names:
        art = load_artifact(n)
        spec = art.spec
        if spec is None:
            inputs = "msoftdrop, tau32"
        elif spec.kind == "blocks":
            inputs = "; ".join(f"{b.name} {len(b.vars)}x{b.length}" for b in spec.blocks)
        elif spec.kind == "image":
            inputs = f"image {len(spec.channels)}x{spec.npix}x{spec.npix}"
        else:
            inputs = f"{spec.kind} {spec.n_features}x{spec.length}"
        params = art.metrics.get("parameters")
        if params is None and art.model is not None and hasattr(art.model, "parameters"):
            params = sum(int(p.numel()) for p in art.model.parameters())
        dom = art.domain
        rows.append((art.name, inputs, f"{params:,}" if params else "-", dom.describe() if dom else "not recorded",
                     art.cpu_backend or "torch", art.hash[:16]))
    if args.json:
        keys = ("name", "inputs", "parameters", "domain", "runtime", "hash")
        print(json.dumps([dict(zip(keys, r)) for r in rows], indent=2))
        return 0
    head = ("name", "inputs", "parameters", "training domain", "CPU runtime", "hash")
    widths = [max(len(str(r[i])) for r in [head, *rows]) for i in range(len(head))]
    for r in [head, *rows]:
        print("  ".join(str(x).ljust(w) for x, w in zip(r, widths)).rstrip())
    return 0


def _describe(path: Any) -> None:
    """Print what an artifact is: name, hash, inputs, classes, score, runtime."""
    from hepml_coffea.artifacts import load_artifact

    art = load_artifact(path)
    print(f"{art.name}: artifact {art.path} (hash {art.hash[:16]})")
    spec = art.spec
    if spec is not None and spec.kind == "blocks":
        for b in spec.blocks:
            print(f"  input {b.name}: {len(b.vars)} x {b.length} ({b.collection}, pad {b.pad_mode})")
    if art.classes:
        print(f"  classes: {', '.join(art.classes)}; score = {art.score_expression}")
    print(f"  runtime: {art.cpu_backend}; padding trimmed per batch: {bool(art.meta.get('trim_padding'))}")
    print(f"  use it: score_fatjets(events, [{str(art.path)!r}]) or hepml-coffea run --taggers {art.path}")


def _cmd_export_weaver(args: argparse.Namespace) -> int:
    from hepml_coffea.weaver import export_weaver

    files = export_weaver(args.tagger, args.out)
    for f in files:
        print(f)
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (exposed for tests and docs)."""
    p = argparse.ArgumentParser(prog="hepml-coffea", description=__doc__.splitlines()[0])
    p.add_argument("--debug", action="store_true", help="on an error, print the whole traceback")
    sub = p.add_subparsers(dest="command", required=True)

    g = sub.add_parser("generate", help="generate top (ttbar) or QCD jets as a PFNano ROOT file")
    g.add_argument("--process", choices=["ttbar", "qcd"], required=True)
    g.add_argument("--events", type=int, required=True)
    g.add_argument("--seed", type=int, default=1)
    g.add_argument("--out", required=True)
    g.add_argument("--workers", type=int, default=1)
    g.add_argument("--pthat-min", type=float, default=500.0)
    g.add_argument("--eta-max", type=float, default=2.5)
    g.add_argument("--no-detector", action="store_true", help="switch the detector response off")
    g.set_defaults(func=_cmd_generate)

    im = sub.add_parser("import", help="seal a model trained elsewhere as a tagger artifact")
    isub = im.add_subparsers(dest="format", required=True)
    iw = isub.add_parser("weaver", help="a weaver-trained model: ONNX + preprocess.json or the data-config YAML")
    iw.add_argument("model", help="the ONNX file (weaver --export-onnx)")
    src = iw.add_mutually_exclusive_group(required=True)
    src.add_argument("--preprocess", help="weaver's preprocess.json (written beside the ONNX)")
    src.add_argument("--data-config", help="the weaver data-config YAML the model was trained with")
    iw.add_argument("--name", required=True, help="tagger name (score column)")
    iw.add_argument("--score", default=None, help="top score over class names, e.g. 'Tbqq / (Tbqq + QCD)'")
    iw.add_argument("--branch-map", default=None,
                    help="shipped map (jetclass, cms) or a YAML adding names (sections pf, sv, new_variables)")
    iw.add_argument("--out", default=None, help="artifact directory (default ./NAME)")
    iw.add_argument("--license", default=None, help="licence file to keep inside the artifact")
    iw.add_argument("--provenance", default=None, help="provenance text to keep inside the artifact")
    iw.set_defaults(func=_cmd_import_weaver)
    for fmt, what in (("torchscript", "a TorchScript file (torch.jit.script / trace)"),
                      ("onnx", "an ONNX graph with inputs named as the spec's kind (points, features, mask ...)")):
        ib = isub.add_parser(fmt, help=f"{what} + an input spec YAML; checked on the bundled CMS sample")
        ib.add_argument("model", help=f"the {fmt} file")
        ib.add_argument("--spec", required=True, help="input spec YAML (kind, features, length, ...; see docs/)")
        ib.add_argument("--name", required=True, help="tagger name (score column)")
        ib.add_argument("--out", default=None, help="artifact directory (default ./NAME)")
        ib.add_argument("--pt-min", type=float, default=None, help="training domain: fat-jet pT lower edge (GeV)")
        ib.add_argument("--pt-max", type=float, default=None, help="training domain: fat-jet pT upper edge (GeV)")
        ib.add_argument("--abs-eta-max", type=float, default=None, help="training domain: |eta| upper edge")
        ib.add_argument("--sample", default=None, help="training domain: the sample it was trained on")
        ib.set_defaults(func=_cmd_import_byo)

    tg = sub.add_parser("taggers", help="the shipped taggers (or given artifacts): inputs, size, domain, runtime, hash")
    tg.add_argument("taggers", nargs="*", help="artifact directories or names (default: every shipped tagger)")
    tg.add_argument("--json", action="store_true")
    tg.set_defaults(func=_cmd_taggers)

    ex = sub.add_parser("export", help="write a tagger in another tool's format")
    esub = ex.add_subparsers(dest="format", required=True)
    ew = esub.add_parser("weaver", help="ONNX + weaver-style preprocess.json + the branch map that reads it back")
    ew.add_argument("tagger", help="shipped tagger name or artifact directory")
    ew.add_argument("--out", required=True, help="output folder")
    ew.set_defaults(func=_cmd_export_weaver)

    s = sub.add_parser("summary", help="constituent summary of NanoAOD/PFNano files")
    s.add_argument("files", nargs="+")
    s.set_defaults(func=_cmd_summary)

    t = sub.add_parser("train", help="train a tagger and write an artifact directory")
    from hepml_coffea.models.registry import MODEL_REGISTRY

    t.add_argument("--model", default=None, choices=[*sorted(MODEL_REGISTRY), "baseline"],
                   help="architecture to train from scratch (or to warm-start with --init-from)")
    t.add_argument("--init-from", default=None, metavar="TAGGER",
                   help="start from this artifact's weights; an imported multi-class model (e.g. particlenet-jetclass) "
                        "is fine-tuned on the two classes of its score")
    t.add_argument("--time-budget", type=float, default=None, help="seconds of training at most")
    t.add_argument("--name", default=None, help="tagger name of the result (fine-tuning)")
    t.add_argument("--signal", nargs="+", required=True, help="ttbar files (truth-matched tops used)")
    t.add_argument("--background", nargs="+", required=True, help="QCD files")
    t.add_argument("--out", required=True)
    t.add_argument("--epochs", type=int, default=None, help="default 20 (3 when fine-tuning)")
    t.add_argument("--batch-size", type=int, default=None, help="default 256 (128 when fine-tuning)")
    t.add_argument("--lr", type=float, default=None, help="peak learning rate, default 1e-3 (3e-4 when fine-tuning)")
    t.add_argument("--seed", type=int, default=1)
    t.add_argument("--max-jets", type=int, default=0, help="cap on jets per class (0 = all)")
    t.add_argument("--patience", type=int, default=4)
    t.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = torch default)")
    t.add_argument("--device", default="auto")
    t.add_argument("--augment", default="none", choices=["none", "reflect", "reflect+rotate"],
                   help="jet-frame symmetries as augmentation (sequence / point-cloud models)")
    t.add_argument("--teacher", default=None, metavar="TAGGER",
                   help="distil from this tagger's scores (cached beside the data), e.g. particlenet")
    t.add_argument("--distill", type=float, default=None, help="weight of the teacher term (default 0.5 with "
                   "--teacher, else 0)")
    t.add_argument("--temperature", type=float, default=2.0, help="distillation temperature")
    t.set_defaults(func=_cmd_train)

    ev = sub.add_parser("evaluate", help="standard evaluation of taggers on ttbar_*.root / qcd_*.root "
                        "(AUC, 1/eB with intervals, mass sculpting, truth definitions; table and plots)")
    ev.add_argument("--data", required=True, help="folder with ttbar_*.root and qcd_*.root "
                    "(workflows/make_eval_set.py writes one)")
    ev.add_argument("--taggers", nargs="+", default=None, help="shipped names or artifact folders (default: all shipped)")
    ev.add_argument("--out", default="docs/eval", help="folder for results.json, report.md and the plots")
    ev.add_argument("--cache", default=None, help="folder caching per-file jets and scores (per artifact hash)")
    ev.add_argument("--device", default="cpu")
    ev.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    ev.add_argument("--update-markdown", default=None, metavar="FILE",
                    help="replace the block between the evaluate markers of FILE (e.g. TAGGERS.md) with report.md")
    ev.set_defaults(func=_cmd_evaluate)

    r = sub.add_parser("run", help="run the TaggerProcessor over a fileset")
    r.add_argument("--fileset", required=True, help="fileset JSON {dataset: [files] or {files: ...}}")
    r.add_argument("--executor", choices=list(EXECUTORS), default="dask")
    r.add_argument("--scheduler", default=None, help="address of an existing Dask scheduler")
    r.add_argument("--workers", type=int, default=2)
    r.add_argument("--chunksize", type=int, default=10000)
    r.add_argument("--taggers", nargs="+", default=None, help="shipped tagger names or artifact paths")
    r.add_argument("--skip-bad-files", action="store_true")
    r.add_argument("--save-scores", default=None, help="folder for per-jet scores (parquet)")
    r.add_argument("--dashboard-address", default="127.0.0.1:8787")
    r.add_argument("--device", default="auto")
    r.add_argument("--allow-cpu-fallback", action="store_true",
                   help="--executor dask-cuda where dask-cuda / a GPU is missing: run on CPU workers (a logged "
                        "warning) instead of failing")
    _add_run_choices(r)
    bat = r.add_argument_group("batch worker jobs (--executor slurm / htcondor; --workers = number of jobs)")
    bat.add_argument("--kind", choices=["cpu", "gpu"], default=None, help="gpu: --gres=gpu / request_gpus and "
                     "`dask cuda worker` (default cpu)")
    bat.add_argument("--cores", type=int, default=None, help="cores per job (default 1)")
    bat.add_argument("--memory", default=None, help="memory per job (default 4GB)")
    bat.add_argument("--walltime", default=None, help="Slurm: HH:MM:SS (default 01:00:00)")
    bat.add_argument("--partition", default=None, help="Slurm partition")
    bat.add_argument("--disk", default=None, help="HTCondor: disk per job (default 4GB)")
    bat.add_argument("--gpus", type=int, default=None, help="GPUs per job with --kind gpu (default 1)")
    bat.add_argument("--env-setup", action="append", default=None, metavar="LINE",
                     help="shell line run in the job before the worker (repeatable)")
    bat.add_argument("--log-directory", default=None, help="worker job logs")
    r.add_argument("--out", required=True, help="output .coffea file")
    r.set_defaults(func=_cmd_run)

    pl = sub.add_parser("plot", help="plots (PNG) from a run output")
    pl.add_argument("output")
    pl.add_argument("--outdir", default=None)
    pl.set_defaults(func=_cmd_plot)

    d = sub.add_parser("demo", help="the main job: bundled samples -> processor on a local Dask cluster -> plots")
    d.add_argument("--out", default="out")
    d.add_argument("--workers", type=int, default=2)
    d.add_argument("--events", type=int, default=0, help="0 = the bundled samples as they are")
    d.add_argument("--executor", choices=["iterative", "futures", "dask", "dask-cuda"], default="dask")
    d.set_defaults(func=_cmd_demo)

    co = sub.add_parser("condor", help="HTCondor: split a fileset into batch jobs, merge job outputs, "
                                       "show a Dask worker job")
    csub = co.add_subparsers(dest="condor_command", required=True)
    cs = csub.add_parser("split", help="write per-job filesets, run_job.sh and jobs.sub into OUTDIR")
    cs.add_argument("fileset", help="fileset JSON")
    cs.add_argument("--outdir", required=True)
    how = cs.add_mutually_exclusive_group()
    how.add_argument("--files-per-job", type=int, default=1)
    how.add_argument("--n-jobs", type=int, default=None)
    cs.add_argument("--taggers", nargs="+", default=None, help="shipped tagger names or artifact paths")
    cs.add_argument("--transfer-taggers", action="store_true",
                    help="let HTCondor copy the artifact directories into each job")
    cs.add_argument("--chunksize", type=int, default=10000)
    cs.add_argument("--device", default="auto")
    cs.add_argument("--skip-bad-files", action="store_true")
    _add_run_choices(cs)
    cs.add_argument("--python", default=None, help="python on the worker nodes (default: hepml-coffea on PATH)")
    cs.add_argument("--env-setup", action="append", default=None, metavar="LINE",
                    help="shell line run before the job (repeatable), e.g. '. /path/venv/bin/activate'")
    cs.add_argument("--request-cpus", type=int, default=1)
    cs.add_argument("--request-memory", default="4GB")
    cs.add_argument("--request-disk", default="4GB")
    cs.add_argument("--request-gpus", type=int, default=0)
    cs.set_defaults(func=_cmd_condor_split)
    cm = csub.add_parser("merge", help="add job outputs (.coffea) into one output")
    cm.add_argument("outputs", nargs="+")
    cm.add_argument("--out", required=True)
    cm.set_defaults(func=_cmd_condor_merge)
    cc = csub.add_parser("cluster-script", help="print the submit description of one Dask worker job")
    cc.add_argument("--kind", choices=["cpu", "gpu"], default="cpu")
    cc.add_argument("--cores", type=int, default=1)
    cc.add_argument("--memory", default="4GB")
    cc.add_argument("--disk", default="4GB")
    cc.add_argument("--gpus", type=int, default=1)
    cc.add_argument("--python", default=None)
    cc.add_argument("--log-directory", default=None)
    cc.add_argument("--env-setup", action="append", default=None, metavar="LINE")
    cc.set_defaults(func=_cmd_condor_cluster_script)
    _add_slurm_parser(sub)
    return p


#: warnings that are known to be harmless schema noise (coffea builds cross-references for
#: collections a file does not have); filtered in our entry points only
QUIET_WARNINGS: tuple[tuple[str, type[Warning]], ...] = (
    ("Missing cross-reference", RuntimeWarning),
    ("Branch .* already exists", RuntimeWarning),
    ("Found duplicate branch", RuntimeWarning),
)


def quiet_schema_warnings() -> None:
    """Filter coffea's known-harmless schema warnings in this process and in the Dask
    workers it starts (through ``PYTHONWARNINGS``, read when a worker process starts)."""
    import os
    import warnings

    for message, category in QUIET_WARNINGS:
        warnings.filterwarnings("ignore", message=message, category=category)
    plain = [f"ignore:{m}:{c.__name__}" for m, c in QUIET_WARNINGS if ".*" not in m]
    current = os.environ.get("PYTHONWARNINGS", "")
    os.environ["PYTHONWARNINGS"] = ",".join([x for x in [current, *plain] if x])


class _Plain(logging.Formatter):
    """The message alone for INFO; ``hepml-coffea: warning: ...`` above."""

    def format(self, record: logging.LogRecord) -> str:
        msg = super().format(record)
        if record.levelno >= logging.WARNING:
            return f"hepml-coffea: {record.levelname.lower()}: {msg}"
        return msg


class _StdStream(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to ``sys.stdout`` / ``sys.stderr`` as they are when a record is emitted (a
    caller that swaps them, e.g. a test capturing output, gets the messages)."""

    def __init__(self, name: str) -> None:
        super().__init__()
        self._name = name

    @property  # type: ignore[override]
    def stream(self) -> Any:
        return getattr(sys, self._name)

    @stream.setter
    def stream(self, value: Any) -> None:  # StreamHandler.__init__ assigns it; the property wins
        pass


def setup_logging(verbose: bool = False) -> None:
    """The command line's log handlers: the package's INFO messages (progress, reports) on
    stdout, warnings and errors on stderr; ``--debug`` adds DEBUG. Library code only logs
    to ``logging.getLogger("hepml_coffea")``; an analysis that imports the package sets up
    its own handlers (or none: then only warnings reach stderr, Python's default). Calling
    it again replaces the handlers it added (records still propagate to the root logger)."""
    root = logging.getLogger("hepml_coffea")
    for h in list(root.handlers):
        if getattr(h, "_hepml_cli", False):
            root.removeHandler(h)
    out = _StdStream("stdout")
    out.addFilter(lambda r: r.levelno < logging.WARNING)
    err = _StdStream("stderr")
    err.setLevel(logging.WARNING)
    for h in (out, err):
        h.setFormatter(_Plain("%(message)s"))
        h._hepml_cli = True  # type: ignore[attr-defined]
        root.addHandler(h)
    root.setLevel(logging.DEBUG if verbose else logging.INFO)


def _one_line(err: BaseException) -> str:
    """``error: <what>`` plus a hint of what to do, on one line."""
    text = " ".join(str(err).split()) or type(err).__name__
    hint = {
        "FilesetError": "check the paths and tree names in the fileset",
        "ArtifactError": "check the tagger name/path (hepml-coffea run --taggers NAME_OR_DIR)",
        "ArtifactIntegrityError": "re-copy or re-train the artifact",
        "MissingBranchError": "the file lacks the branches named above",
        "WeaverImportError": "fix the file or name given above",
        "ConfigurationError": "fix the option named above",
        "FileNotFoundError": "check the path",
    }.get(type(err).__name__, "run with --debug for the traceback")
    return f"hepml-coffea: error: {type(err).__name__}: {text} ({hint})"


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``hepml-coffea``: one clear line per error, ``--debug`` for the traceback."""
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv  # accepted anywhere on the line
    args: Any = build_parser().parse_args([a for a in argv if a != "--debug"])
    args.debug = debug
    setup_logging(debug)
    quiet_schema_warnings()
    from hepml_coffea.io import index_rntuple_fields

    index_rntuple_fields()  # the command line's own choice (see hepml_coffea.io)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("hepml-coffea: interrupted", file=sys.stderr)
        return 130
    except Exception as err:  # noqa: BLE001 - the CLI turns every error into one line
        if args.debug:
            raise
        print(_one_line(err), file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
