"""A good citizen in the user's process (issue 21): no import-time side effects, no noise.

* ``import hepml_coffea`` imports neither torch nor matplotlib; importing *every* module of the
  package leaves uproot, matplotlib (backend, rcParams), the warning filters and the logging
  handlers of the process as they were.
* The README's analysis example, run on a generated file, prints no warning at all; on the CMS
  samples only coffea's own schema warnings about those files remain (listed and explained below).
"""

from __future__ import annotations

import re
import subprocess
import sys
import warnings
from collections import Counter
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "tests" / "samples"

_PROBE = r"""
import importlib, json, logging, pkgutil, sys, warnings
# third-party packages first (some add warning filters of their own at import, e.g. sympy via torch):
# what is compared is what importing *our* modules changes
import torch, onnxruntime, coffea.processor, coffea.nanoevents, dask, distributed, hist, mplhep, numba, uproot
import matplotlib.pyplot
import matplotlib
backend = matplotlib.get_backend()
import matplotlib as mpl
rc = dict(mpl.rcParams)
from uproot.behaviors.RNTuple import HasFields
fields = HasFields.__dict__["fields"]
filters = list(warnings.filters)
handlers = list(logging.getLogger().handlers), list(logging.getLogger("hepml_coffea").handlers)
import hepml_coffea
names = sorted(m.name for m in pkgutil.walk_packages(hepml_coffea.__path__, "hepml_coffea.")
               if not m.name.endswith("__main__"))
for n in names:
    importlib.import_module(n)
changed = [k for k in rc if str(mpl.rcParams[k]) != str(rc[k])]
print(json.dumps({
    "modules": len(names),
    "backend_same": matplotlib.get_backend() == backend,
    "rc_changed": changed[:10],
    "uproot_same": HasFields.__dict__["fields"] is fields,
    "filters_same": list(warnings.filters) == filters,
    "handlers_same": (list(logging.getLogger().handlers), list(logging.getLogger("hepml_coffea").handlers)) == handlers,
}))
"""


def test_import_hepml_coffea_is_light():
    code = ("import sys, hepml_coffea; heavy = [m for m in ('torch', 'matplotlib', 'onnxruntime', 'coffea', "
            "'dask') if m in sys.modules]; print(heavy)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    assert r.stdout.strip() == "[]", r.stdout


def test_importing_every_module_changes_nothing_in_the_process():
    import json

    r = subprocess.run([sys.executable, "-c", _PROBE], capture_output=True, text=True, timeout=300, check=False)
    assert r.returncode == 0, r.stderr[-3000:]
    got = json.loads(r.stdout.strip().splitlines()[-1])
    assert got["modules"] > 40
    assert got == {**got, "backend_same": True, "rc_changed": [], "uproot_same": True, "filters_same": True,
                   "handlers_same": True}


def test_rntuple_index_is_opt_in_and_restorable():
    from uproot.behaviors.RNTuple import HasFields

    from hepml_coffea.data import io

    io.restore_rntuple_fields()  # an in-process hepml-coffea main() (other tests) installs it: the CLI's choice
    stock = HasFields.__dict__["fields"]
    assert not io.rntuple_index_installed()
    try:
        assert io.index_rntuple_fields() and io.rntuple_index_installed()
        assert HasFields.__dict__["fields"] is not stock
    finally:
        io.restore_rntuple_fields()
    assert HasFields.__dict__["fields"] is stock and not io.rntuple_index_installed()


def _readme_example(path: Path, schema: str) -> Counter[str]:
    """Run the README's analysis example on ``path``; the warnings it raised, by message."""
    src = (ROOT / "README.md").read_text()
    block = re.search(r"```python\n(import awkward as ak, hist.*?)```", src, re.S)
    assert block is not None, "the README's analysis example moved"
    code = block.group(1)
    assert 'runner({"cms": ["tests/samples/pfnano.root"]}' in code and "schema=PFNanoAODSchema" in code
    code = code.replace('"tests/samples/pfnano.root"', repr(str(path))).replace("schema=PFNanoAODSchema",
                                                                                f"schema={schema}")
    code = "from coffea.nanoevents import NanoAODSchema\n" + code
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        scope: dict[str, object] = {}
        exec(compile(code, "README.md", "exec"), scope)  # noqa: S102 - the README's own example
    assert scope["out"]["cms"].sum() > 0  # the example ran and filled its histogram
    return Counter(f"{w.category.__name__}: {w.message}" for w in caught)


@pytest.mark.slow
def test_readme_example_is_silent_on_generated_files(ttbar_file):
    assert _readme_example(Path(ttbar_file), "PFNanoAODSchema") == Counter()


#: coffea's own schema warnings about the CMS PFNano test file itself (not about our code): the
#: file stores LowPtElectron without the index branches NanoAODSchema cross-references, and
#: PFNanoAODSchema replaces Photon mass / charge by 0 as it does for every NanoAOD photon
CMS_PFNANO_EXPECTED = {
    "RuntimeWarning: Missing cross-reference index for LowPtElectron_electronIdx => Electron",
    "RuntimeWarning: Missing cross-reference index for LowPtElectron_genPartIdx => GenPart",
    "RuntimeWarning: Missing cross-reference index for LowPtElectron_photonIdx => Photon",
    "RuntimeWarning: Branch Photon_mass already exists but its values will be replaced with 0.0",
    "RuntimeWarning: Branch Photon_charge already exists but its values will be replaced with 0.0",
}


@pytest.mark.slow
def test_readme_example_on_cms_samples_only_coffeas_own_schema_warnings():
    got = _readme_example(SAMPLES / "pfnano.root", "PFNanoAODSchema")
    assert set(got) <= CMS_PFNANO_EXPECTED, set(got) - CMS_PFNANO_EXPECTED
    assert _readme_example(SAMPLES / "nano_tt_v15.root", "NanoAODSchema") == Counter()
