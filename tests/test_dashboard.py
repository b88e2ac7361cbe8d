"""The Dask dashboard during a run of the processor, checked in headless Chromium.

Debian's ``/usr/bin/chromium`` driven by playwright (no downloaded browser). The
dashboard's plots are canvases, so the stage names are read from the pages' Bokeh
documents (their data sources and widgets) and, independently, from the scheduler's
fine-performance-metrics state. Screenshots of both pages go to ``tmp_path``, and also
to the folder named by ``HEPML_DASHBOARD_SCREENSHOTS`` when set (``docs/`` holds the
ones made that way).

Skipped with the reason where Chromium or playwright is missing -- except under
``CI=true``, where that fails (``.ci/run`` installs Chromium).
"""

from __future__ import annotations

import os
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hepml_coffea.batch.clusters import make_cluster
from hepml_coffea.config import RunConfig
from hepml_coffea.scoring import STAGES

pytestmark = pytest.mark.browser

#: every string held by the Bokeh models of the page: data-source columns, select
#: options, categorical axis factors (the plots themselves are canvas pixels)
BOKEH_STRINGS = """() => {
  const out = [];
  if (!window.Bokeh) return out;
  for (const doc of Bokeh.documents) {
    for (const m of doc.all_models) {
      if (m.data) {
        const cols = m.data instanceof Map ? [...m.data.values()] : Object.values(m.data);
        for (const v of cols) if (Array.isArray(v)) out.push(...v.filter(x => typeof x === 'string'));
      }
      for (const attr of ['options', 'factors', 'labels']) {
        if (Array.isArray(m[attr])) out.push(...m[attr].flat().map(String));
      }
    }
  }
  return out;
}"""


def _missing(reason: str) -> None:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"CI=true but {reason} (.ci/run installs Chromium with .ci/chromium-up.sh)")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def chromium() -> str:
    path = shutil.which("chromium") or ("/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None)
    if path is None:
        _missing("no Chromium (apt-get install chromium)")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        _missing("playwright is not installed (pip install playwright; no browser download needed)")
    return str(path)


@pytest.fixture
def dask_client() -> Iterator[Any]:
    cluster, client = make_cluster("dask", workers=2, dashboard_address="127.0.0.1:0")
    try:
        yield client
    finally:
        client.close()
        cluster.close()


def _scheduler_activities(dask_scheduler: Any) -> dict[str, float]:
    """Seconds per activity of executed tasks (the fine-metrics page's data)."""
    out: dict[str, float] = {}
    for key, value in dask_scheduler.cumulative_worker_metrics.items():
        if isinstance(key, tuple) and len(key) == 4 and key[0] == "execute" and key[3] == "seconds":
            out[key[2]] = out.get(key[2], 0.0) + float(value)
    return out


def test_dashboard_shows_processor_stages(chromium: str, dask_client: Any, ttbar_file: Path, qcd_file: Path,
                                          tiny_artifacts: dict[str, Path], tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    from hepml_coffea.analysis.processor import TaggerProcessor
    from hepml_coffea.batch.run import run_fileset

    assert set(STAGES) == {"read_constituents", "build_representation", "infer", "fill"}
    base = dask_client.dashboard_link.rsplit("/", 1)[0]
    assert base.startswith("http://127.0.0.1:")
    # pfn builds a sequence representation: all four stages run
    proc = TaggerProcessor(taggers=[str(tiny_artifacts["baseline"]), str(tiny_artifacts["pfn"])])
    fileset = {"ttbar": [str(ttbar_file)], "qcd": [str(qcd_file)]}
    result: dict[str, Any] = {}

    def work() -> None:
        try:
            result["out"] = run_fileset(fileset, proc, config=RunConfig(executor="dask", chunksize=50, status=False),
                                        client=dask_client)
        except BaseException as err:  # noqa: BLE001 - re-raised in the test thread
            result["error"] = err

    shots = [tmp_path]
    if os.environ.get("HEPML_DASHBOARD_SCREENSHOTS"):
        shots.append(Path(os.environ["HEPML_DASHBOARD_SCREENSHOTS"]))
    thread = threading.Thread(target=work)
    loaded_during_run = []
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=chromium, headless=True, args=["--no-sandbox"])
            try:
                page = browser.new_page(viewport={"width": 1400, "height": 900})
                # /status: the live task stream and progress while chunks are processed
                page.goto(f"{base}/status")
                page.wait_for_function("() => window.Bokeh && Bokeh.documents.length > 0", timeout=60_000)
                assert "needs bokeh" not in page.content()
                thread.start()  # the page is open, as a user would have it, when the run starts
                # The progress bars name a task group as soon as it is submitted; the task
                # stream (which names the workers) fills only as tasks finish, a second or so
                # later. Poll until both were seen, accumulating what the page has shown.
                workers = set(dask_client.scheduler_info()["workers"])
                deadline = time.monotonic() + 120
                seen: set[str] = set()
                was_running = False
                while time.monotonic() < deadline:
                    running = thread.is_alive()
                    seen.update(page.evaluate(BOKEH_STRINGS))
                    was_running = was_running or ("TaggerProcessor" in seen and running)
                    if "TaggerProcessor" in seen and seen & workers:
                        break
                    if not running:  # one last look after the run ended, then stop
                        time.sleep(1.0)
                        seen.update(page.evaluate(BOKEH_STRINGS))
                        break
                    time.sleep(0.5)
                loaded_during_run.append(was_running)
                # coffea's chunk tasks are named after the processor
                assert "TaggerProcessor" in seen, "the /status page shows no chunk task"
                assert seen & workers, f"the /status page does not list the workers {sorted(workers)}"
                for d in shots:
                    d.mkdir(parents=True, exist_ok=True)
                    page.screenshot(path=str(d / "dashboard_status.png"))

                # /individual-fine-performance-metrics: our context_meter stages as activities
                page.goto(f"{base}/individual-fine-performance-metrics")
                page.wait_for_function("() => window.Bokeh && Bokeh.documents.length > 0", timeout=60_000)
                loaded_during_run.append(thread.is_alive())
                deadline = time.monotonic() + 120
                shown: set[str] = set()
                while time.monotonic() < deadline:
                    shown = set(STAGES) & set(page.evaluate(BOKEH_STRINGS))
                    if shown == set(STAGES):
                        break
                    time.sleep(0.5)
                assert shown == set(STAGES), f"stages on the page: {sorted(shown)}"
                page.set_viewport_size({"width": 1400, "height": 430})  # the plots, not the blank page below
                page.wait_for_timeout(1000)  # let the canvas draw the last update
                for d in shots:
                    page.screenshot(path=str(d / "dashboard_fine_metrics.png"))
            finally:
                browser.close()
    finally:
        if thread.ident is not None:  # started
            thread.join(timeout=300)
    if "error" in result:
        raise result["error"]
    assert loaded_during_run[0], "the run ended before /status was loaded"
    seconds = dask_client.run_on_scheduler(_scheduler_activities)
    for stage in STAGES:
        assert seconds.get(stage, 0.0) > 0.0, (stage, seconds)
    events = sum(d["cutflow"]["events"] for d in result["out"]["datasets"].values())
    assert events == 600
    assert (tmp_path / "dashboard_status.png").stat().st_size > 10_000
    assert (tmp_path / "dashboard_fine_metrics.png").stat().st_size > 10_000
