"""`hwnas report`: the report of a small real run, rendered in headless Chromium.

The run is real and small: a `tiny` supernet trained a few iterations, a search of a few archs
under the host onnxruntime table, the winner exported to ONNX and timed, and the table
validated on 4 whole networks. The page is then rendered twice:

- as written, with Chromium's network log: no request leaves the page (and a control page
  with one remote image shows the log would catch one);
- with a test stylesheet that places every plot at a known cell of a grid: each cell of the
  screenshot must hold drawn pixels (and an empty control plot's cell must not).
"""

from __future__ import annotations

import csv
import json
import math
import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from hwnas.errors import HwnasError

from .conftest import REPO, run_hwnas

TABLE = "latency_tables/host-tiny-onnxruntime.json"
CELL_W, CELL_H, COLS = 640, 580, 2


def chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


# ---- the run ------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def real_run(tmp_path_factory, one_torch_thread):
    """A run folder of a real, small run (library calls), inside a project folder with its table."""
    from hwnas.export.api import export_arch
    from hwnas.latency.backends.base import Protocol
    from hwnas.latency.validate import validate_table
    from hwnas.search.api import run_search
    from hwnas.train.trainer import TrainConfig, train_supernet

    project = tmp_path_factory.mktemp("project")
    (project / "latency_tables").mkdir()
    table = project / TABLE
    shutil.copy(REPO / TABLE, table)
    run = project / "runs" / "small"
    cfg = TrainConfig(space="tiny", sampler="greedy", max_iters=16, n_train=256, n_val=128, n_path_eval=16, pool_size=10,
                      m=4, k=2, batch_size=16, ckpt_every=0)
    train_supernet(cfg, run / "supernet")  # leaves supernet/metrics.csv
    run_search(latency="0.25ms", supernet=run / "supernet", population=4, generations=2, n_eval=32, bn_batches=1, out=run / "search",
               plot=False, table=table)
    exported = export_arch(str(run / "search" / "best.json"), fmt="onnx", out=run / "export", latency_runs=10)
    validate_table("host", table, samples=3, protocol=Protocol(warmup_runs=2, runs=5, min_time_s=0.005, rounds=2))
    manifest = {"name": "small", "table": {"path": TABLE},
                "stages": {"train": {"status": "done", "outputs": {"supernet": "supernet"}},
                           "search": {"status": "done", "outputs": {"best": "search/best.json"}},
                           "export": {"status": "done", "outputs": {"model": str(exported.path.relative_to(run))}}}}
    (run / "run.json").write_text(json.dumps(manifest))
    return run


def metric_columns(run: Path) -> list[str]:
    """The columns of the run's metrics.csv, after iteration, with at least one number."""
    with open(run / "supernet" / "metrics.csv", newline="") as f:
        header, *rows = list(csv.reader(f))
    cols = [name for j, name in enumerate(header[1:], 1) if any(r[j] and math.isfinite(float(r[j])) for r in rows)]
    assert header[0] == "iteration" and {"loss", "accuracy", "lr"} <= set(cols) and len(rows) == 16
    return cols


def plot_ids(html: str) -> list[str]:
    return re.findall(r'<figure class="plot[^"]*" id="([^"]+)"', html)


def test_report_shows_every_part_of_a_real_run(real_run):
    from hwnas.report import write_report

    path = write_report(real_run)
    assert path == real_run / "report.html"
    html = path.read_text()
    ids = plot_ids(html)
    assert {"plot-pareto", "plot-latency-check", "plot-winner", "plot-table"} <= set(ids)
    # every numeric column of metrics.csv against iteration, and nothing else
    assert sorted(i for i in ids if i.startswith("plot-train-")) == sorted(f"plot-train-{c}" for c in metric_columns(real_run))
    assert len(ids) == len(set(ids))
    best = json.loads((real_run / "search" / "best.json").read_text())
    assert best["compact"] in html  # the winner is named
    side = json.loads(next((real_run / "export").glob("*.json")).read_text())
    assert f"{side['latency']['measured_ms']:.4g}" in html  # the exported file's measured latency
    assert "not been validated" not in html and "has not run" not in html  # nothing is missing
    # element ids inside the plots are prefixed per plot: none appears twice in the page
    all_ids = re.findall(r'\bid="([^"]+)"', html)
    assert len(all_ids) == len(set(all_ids))


def test_report_command_writes_the_page(real_run, tmp_path):
    out = tmp_path / "page.html"
    r = run_hwnas("report", str(real_run), "--out", str(out))
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == f"report: {out}"
    from hwnas.report import write_report

    assert plot_ids(out.read_text()) == plot_ids(write_report(real_run, tmp_path / "library.html").read_text())


def test_report_states_missing_pieces(real_run, tmp_path):
    from hwnas.report import write_report

    partial = tmp_path / "runs" / "partial"
    shutil.copytree(real_run / "supernet", partial / "supernet")
    (partial / "run.json").write_text(json.dumps({"stages": {"train": {"status": "done"}, "search": {"status": "pending"}}}))
    html = write_report(partial).read_text()
    assert "the search stage has not run yet" in html
    assert "the export stage has not run" in html
    assert "names no latency table" in html
    assert set(plot_ids(html)) == {f"plot-train-{c}" for c in metric_columns(real_run)}


def test_report_of_a_folder_that_is_not_a_run_is_one_line(tmp_path):
    from hwnas.report import write_report

    with pytest.raises(HwnasError, match="not a run folder"):
        write_report(tmp_path)
    r = run_hwnas("report", str(tmp_path), cwd=tmp_path)
    assert r.returncode == 2
    assert r.stderr.strip().count("\n") == 0 and r.stderr.startswith("error: ") and "run.json" in r.stderr
    r = run_hwnas("report", str(tmp_path / "nowhere"), cwd=tmp_path)
    assert r.returncode == 2 and "is not a folder" in r.stderr


# ---- rendering in Chromium ----------------------------------------------------------------------
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync", "--disable-default-apps",
                  "--disable-extensions", "--host-resolver-rules=MAP * ~NOTFOUND"]


def render(page: Path, out_png: Path, width: int, height: int, net_log: Path | None = None) -> np.ndarray:
    """Screenshot ``page`` in a fresh headless Chromium profile; returns the RGB pixels."""
    from PIL import Image

    exe = chromium()
    args = [exe, *CHROMIUM_FLAGS, f"--user-data-dir={out_png.parent / (out_png.stem + '-profile')}",
            f"--window-size={width},{height}", f"--screenshot={out_png}"]
    if net_log is not None:
        args.append(f"--log-net-log={net_log}")
    subprocess.run([*args, page.resolve().as_uri()], capture_output=True, timeout=180, check=True)
    return np.asarray(Image.open(out_png).convert("RGB"))


def page_requests(net_log: Path) -> set[str]:
    """http(s) URLs the page itself requested: the ``url`` of every network-log source whose
    request was made from a file:// page (Chromium's own update and account requests have no
    page and are left out)."""
    events = json.loads(net_log.read_text())["events"]
    urls: dict[int, set[str]] = {}
    from_file: set[int] = set()
    for ev in events:
        sid = ev.get("source", {}).get("id", -1)
        params = ev.get("params") or {}
        if isinstance(params.get("url"), str) and re.match(r"https?://", params["url"]):
            urls.setdefault(sid, set()).add(params["url"])
        if "file://" in json.dumps(params):
            from_file.add(sid)
    return {u for sid in from_file for u in urls.get(sid, ())}


def drawn_share(cell: np.ndarray) -> float:
    """Share of the cell's pixels that are not the white background."""
    return float(np.mean(np.any(cell < 235, axis=2)))


def grid_page(html: str, ids: list[str]) -> str:
    """The same page with only its plots, each at a known cell of a grid, plus an empty control plot."""
    cells = "".join(f"#{pid} {{ left: {(i % COLS) * CELL_W}px; top: {(i // COLS) * CELL_H}px; }}\n" for i, pid in enumerate(ids))
    style = (f"<style>body {{ margin: 0; padding: 0; max-width: none; background: #fff; }} body > * {{ display: none !important; }}"
             f" body > figure.plot {{ display: block !important; position: absolute; margin: 0; padding: 8px; box-sizing: border-box;"
             f" width: {CELL_W}px !important; height: {CELL_H}px; overflow: hidden; max-width: none; }}"
             f" figcaption {{ display: none; }}\n{cells}</style>")
    control = '<figure class="plot" id="plot-empty-control"><svg width="100%" viewBox="0 0 10 7"></svg></figure>'
    return html.replace("</head>", style + "</head>", 1).replace("</body>", control + "</body>", 1)


def test_report_renders_every_plot_and_requests_nothing(real_run, tmp_path):
    from hwnas.report import write_report

    if chromium() is None:
        if os.environ.get("HWNAS_REQUIRE_CHROMIUM"):  # set by .ci/run: there the test must run
            pytest.fail("chromium is not installed but HWNAS_REQUIRE_CHROMIUM is set; install it with `apt-get install -y chromium`")
        pytest.skip("chromium is not installed here (`apt-get install -y chromium`; .ci/run installs it)")

    html = write_report(real_run).read_text()
    # nothing to fetch: a policy that forbids every request, and no address in the page at all
    assert "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none';" in html
    assert not re.search(r"https?://|<script|<link|\bsrc=|@import|@font-face", html)

    # as written: the page renders (not blank) and Chromium's network log holds no request from it
    full = render(real_run / "report.html", tmp_path / "full.png", 1200, 3000, net_log=tmp_path / "net.json")
    assert drawn_share(full) > 0.05
    assert page_requests(tmp_path / "net.json") == set()
    control = tmp_path / "control.html"
    control.write_text('<html><body><img src="http://example.invalid/x.png"><p>control</p></body></html>')
    render(control, tmp_path / "control.png", 400, 300, net_log=tmp_path / "control-net.json")
    assert page_requests(tmp_path / "control-net.json") == {"http://example.invalid/x.png"}  # the log would catch one

    # every plot at a known cell: each cell is drawn, the empty control's is not
    ids = [*plot_ids(html), "plot-empty-control"]
    grid = tmp_path / "grid.html"
    grid.write_text(grid_page(html, ids[:-1]).replace("</style>", f"#plot-empty-control {{ left: {((len(ids) - 1) % COLS) * CELL_W}px; "
                                                                   f"top: {((len(ids) - 1) // COLS) * CELL_H}px; }}</style>", 1))
    rows = (len(ids) + COLS - 1) // COLS
    px = render(grid, tmp_path / "grid.png", COLS * CELL_W, rows * CELL_H)
    shares = {pid: drawn_share(px[(i // COLS) * CELL_H:(i // COLS + 1) * CELL_H, (i % COLS) * CELL_W:(i % COLS + 1) * CELL_W])
              for i, pid in enumerate(ids)}
    assert shares.pop("plot-empty-control") == 0.0
    blank = {pid: s for pid, s in shares.items() if s < 0.02}
    assert not blank, f"plots drawn blank: {blank} (all: {shares})"
