"""The report page works in a real browser: opened offline in headless Chromium, every figure
of ``report.figures`` is drawn by plotly.js (an svg inside each graph div) and no JavaScript
error or unhandled promise rejection happens while the page loads."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analysis.comparison_report import build_report, render_html

CHROMIUM = shutil.which("chromium")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="no `chromium` on PATH (.ci/run installs Debian's package)"
)

CELLS = ("clip:adamw", "sogclr:adamw", "sogclr:sgd_nesterov")
METRICS = ("r_mean", "zs_top1", "txt_r1")

# Runs before plotly.js: every uncaught error or rejection is appended to an attribute of <html>,
# which --dump-dom prints. The attribute starts empty, so its presence proves the hook ran.
ERROR_HOOK = """<script>
(function () {
  var root = document.documentElement;
  root.setAttribute("data-js-errors", "");
  function record(message) {
    root.setAttribute("data-js-errors", root.getAttribute("data-js-errors") + message + "\\n");
  }
  window.addEventListener("error", function (e) { record("error: " + e.message); });
  window.addEventListener("unhandledrejection", function (e) {
    record("unhandled rejection: " + e.reason);
  });
})();
</script>"""


def confirm_table(seeds: int = 4) -> pd.DataFrame:
    """One row per cell x seed x epoch, cells shifted apart so the report has something to say."""
    rng = np.random.default_rng(0)
    rows = []
    for shift, cell in enumerate(CELLS):
        loss, optimizer = cell.split(":")
        for seed in range(seeds):
            for epoch in (1, 2):
                value = 40 + 5 * shift + 10 * epoch + rng.normal(0, 1)
                run = {"cell": cell, "loss": loss, "optimizer": optimizer, "seed": seed}
                metrics = {m: value / (i + 1) for i, m in enumerate(METRICS)}
                rows.append({**run, "epoch": epoch, **metrics})
    return pd.DataFrame(rows)


def sweep_table() -> pd.DataFrame:
    """One row per trial x epoch; ``number`` counts trials within each cell's study."""
    rng = np.random.default_rng(1)
    rows = []
    for cell in CELLS:
        loss, optimizer = cell.split(":")
        for number, (state, epochs) in enumerate([("COMPLETE", 2), ("PRUNED", 1), ("COMPLETE", 2)]):
            trial = {"trial_id": f"{cell}/{number}", "cell": cell, "number": number, "state": state}
            params = {"loss": loss, "optimizer": optimizer, "lr": 10 ** rng.uniform(-4, -2)}
            params["weight_decay"] = 0.01
            for epoch in range(1, epochs + 1):
                metrics = {m: rng.uniform(10, 60) for m in METRICS}
                rows.append({**trial, "epoch": epoch, **params, **metrics})
    return pd.DataFrame(rows)


def with_error_hook(page: str) -> str:
    """The page with ``ERROR_HOOK`` inserted before its first script."""
    head, script, rest = page.partition("<script")
    assert script, "the report has no <script>"
    return head + ERROR_HOOK + script + rest


def dump_dom(page: Path, profile: Path) -> str:
    """The DOM of ``page`` after headless Chromium loaded it and ran its scripts."""
    command = [
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={profile}",
        "--virtual-time-budget=8000",
        "--dump-dom",
        page.as_uri(),
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0 and "</html>" in done.stdout, done.stderr[-2000:]
    return done.stdout


def js_errors(dom: str) -> str:
    """What ``ERROR_HOOK`` recorded in the dumped DOM."""
    match = re.search(r'<html[^>]*\sdata-js-errors="([^"]*)"', dom)
    assert match, "the error hook did not run"
    return match.group(1).strip()


def unrendered(dom: str, names: list[str]) -> list[str]:
    """Names of the figures whose graph div holds no plotly svg (divs are in figure order)."""
    graphs = dom.split('class="plotly-graph-div')[1:]
    assert len(graphs) == len(names), f"{len(graphs)} graph divs for {len(names)} figures"
    return [
        name
        for name, graph in zip(names, graphs, strict=True)
        if not graph.startswith(" js-plotly-plot") or 'class="main-svg"' not in graph
    ]


def test_report_renders_in_headless_chromium_without_errors(tmp_path):
    report = build_report(
        confirm_table(), sweep_table(), primary="r_mean", mode="max", max_epochs=2
    )
    page = render_html(report, title="browser check", setup={"cells": ", ".join(CELLS)})
    assert not re.search(r"<(script|link)[^>]+(src|href)=[\"']?(https?:)?//", page), (
        "loads from the network"
    )
    path = tmp_path / "report.html"
    path.write_text(with_error_hook(page), encoding="utf-8")

    dom = dump_dom(path, tmp_path / "profile")

    assert js_errors(dom) == ""
    assert unrendered(dom, list(report.figures)) == []
