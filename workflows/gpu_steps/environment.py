"""Step 1, ``environment``: torch + CUDA, coffea, dask, dask-cuda, fastjet, pythia8mc and the
project's modules, checked within seconds (:class:`~gpu_steps.common.EnvironmentProblem` lists what is missing).
"""

from __future__ import annotations

import contextlib
import os
import platform
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from gpu_steps.common import EnvironmentProblem, INSTALL_HINT


def pythia_data() -> str | None:
    """Point ``PYTHIA8DATA`` at pythia8mc's ``xmldoc`` when it is unset.

    pythia8mc looks for its settings at ``../../../share/Pythia8/xmldoc`` from its module,
    which is right for a site-packages install but not for ``pip install --target DIR``
    (how the device installs the carried wheels: the files land in ``DIR/share``). Set
    here, before the generation processes start, so they inherit it. Returns the folder.
    """
    import importlib.util

    if os.environ.get("PYTHIA8DATA"):
        return os.environ["PYTHIA8DATA"]
    spec = importlib.util.find_spec("pythia8mc")
    if spec is None or spec.origin is None:
        return None
    base = Path(spec.origin).resolve().parent
    for cand in (base / "share" / "Pythia8" / "xmldoc", Path(os.path.normpath(base / "../../../share/Pythia8/xmldoc")),
                 Path(sys.prefix) / "share" / "Pythia8" / "xmldoc"):
        if (cand / "Index.xml").is_file():
            os.environ["PYTHIA8DATA"] = str(cand)
            return str(cand)
    return None


def _pythia_init_ok() -> bool:
    """Whether Pythia initialises with the generation's QCD settings (about a second)."""
    import pythia8mc

    py = pythia8mc.Pythia("", False)
    ok = all(py.readString(x) for x in ("Print:quiet = on", "Beams:eCM = 14000.", "HardQCD:all = on",
                                         "PhaseSpace:pTHatMin = 500."))
    return bool(ok and py.init())


def check_environment(smoke: bool, work: Path) -> dict[str, Any]:
    """Versions, GPU and imports; raise :class:`EnvironmentProblem` naming everything missing."""
    info: dict[str, Any] = {"python": platform.python_version(), "machine": platform.machine(),
                            "cpus": os.cpu_count(), "smoke": smoke}
    problems: list[str] = []
    try:
        import torch

        info["torch"] = torch.__version__
        info["cuda_available"] = torch.cuda.is_available()
        if torch.cuda.is_available():
            info["gpu"] = torch.cuda.get_device_name(0)
            info["gpu_capability"] = list(torch.cuda.get_device_capability(0))
            info["gpu_memory_gib"] = round(torch.cuda.get_device_properties(0).total_memory / 2**30, 1)
            a = torch.randn(1024, 1024, device="cuda", dtype=torch.bfloat16)
            info["bf16_matmul_ok"] = bool(torch.isfinite((a @ a).float()).all().item())
            info["torch_cuda"] = torch.version.cuda
        elif not smoke:
            problems.append("torch sees no CUDA device (torch.cuda.is_available() is False; "
                            f"CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES')!r})")
    except Exception as err:  # noqa: BLE001
        problems.append(f"torch unusable: {type(err).__name__}: {err}")
    needed = ["numpy", "awkward", "uproot", "hist", "vector", "numba", "coffea", "coffea.processor",
              "coffea.nanoevents", "dask", "distributed", "fastjet", "pythia8mc", "safetensors", "yaml",
              "hepml_coffea.samples.generate", "hepml_coffea.training.train", "hepml_coffea.inference.engine",
              "hepml_coffea.analysis.processor", "hepml_coffea.batch.run", "hepml_coffea.batch.clusters", "hepml_coffea.config",
              "hepml_coffea.analysis.histograms", "hepml_coffea.representations", "hepml_coffea.artifacts"]
    if not smoke:
        needed += ["dask_cuda", "pynvml"]
    versions: dict[str, str] = {}
    for mod in needed:
        try:
            m = __import__(mod, fromlist=["_"])
            versions[mod] = str(getattr(m, "__version__", "ok"))
        except Exception as err:  # noqa: BLE001
            problems.append(f"import {mod} failed: {type(err).__name__}: {str(err)[:200]}")
    info["versions"] = versions
    if "pythia8mc" in versions:
        info["pythia8data"] = pythia_data()
        try:
            if not _pythia_init_ok():
                problems.append(f"Pythia does not initialise (PYTHIA8DATA={os.environ.get('PYTHIA8DATA')!r}: "
                                "point it at pythia8mc's share/Pythia8/xmldoc)")
        except Exception as err:  # noqa: BLE001
            problems.append(f"Pythia does not initialise: {type(err).__name__}: {err}")
    optional = {}
    for mod in ("mplhep", "hepml_coffea.evaluation", "hepml_coffea.scoring"):
        try:
            __import__(mod)
            optional[mod] = True
        except Exception:  # noqa: BLE001 - optional
            optional[mod] = False
    info["optional"] = optional
    with contextlib.suppress(Exception):
        from hepml_coffea.training.train import TrainConfig

        if not {"amp", "data_on_device", "time_budget_s", "plots"} <= set(TrainConfig.__dataclass_fields__):
            problems.append("hepml_coffea.training.train.TrainConfig lacks amp/data_on_device/time_budget_s/plots "
                            "(the project tree is older than the campaign)")
    free = shutil.disk_usage(work).free / 2**30
    info["work_free_gib"] = round(free, 1)
    if free < 2:
        problems.append(f"only {free:.1f} GiB free in the work folder {work}; need >= 2")
    if problems:
        raise EnvironmentProblem("; ".join(problems) + ". " + INSTALL_HINT)
    return info


def host_report(path: Path, pip: bool = True) -> None:
    """nvidia-smi, CPU model and (``pip``) pip's view of the packages, for the record."""
    lines = []
    cmds = [["nvidia-smi"], ["lscpu"]]
    if pip:
        cmds.append([sys.executable, "-m", "pip", "list", "--disable-pip-version-check"])
    for cmd in cmds:
        try:
            r = subprocess.run(cmd, capture_output=True, text=True, timeout=20, check=False)
            lines += [f"$ {' '.join(cmd)}", r.stdout[-20000:], r.stderr[-2000:]]
        except Exception as err:  # noqa: BLE001
            lines.append(f"$ {' '.join(cmd)}: {type(err).__name__}: {err}")
    path.write_text("\n".join(lines))
