"""The README's analysis example runs as written (on the real CMS PFNano file)."""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np

ROOT = Path(__file__).parent.parent


def _snippet(heading: str) -> str:
    text = (ROOT / "README.md").read_text()
    section = text[text.index(heading):]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_readme_user_processor_runs_on_cms_pfnano(monkeypatch):
    monkeypatch.chdir(ROOT)
    code = _snippet("## Use it in your analysis")
    ns: dict = {}
    exec(compile(code, "README.md", "exec"), ns)  # noqa: S102 - our own documentation
    import awkward as ak
    import uproot

    h = ns["out"]["cms"]
    fj = uproot.open("tests/samples/pfnano.root")["Events"].arrays(["FatJet_pt", "FatJet_eta"])
    n_pass = int(ak.sum((fj.FatJet_pt > 400) & (abs(fj.FatJet_eta) < 2.4)))
    assert n_pass == 20
    assert h.sum(flow=True) == n_pass  # every selected fat jet filled once (one has mSD > 300: overflow)
    assert set(h.axes.name) == {"msd", "tagged"}
    assert np.isfinite(h.values()).all()
    assert os.path.exists("tests/samples/pfnano.root")
