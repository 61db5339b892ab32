"""The probe report's HTML page in a real browser (headless Chromium): at 1200 px it fits without
scrolling sideways, the nine personas sit in the alignment grid, and every tile's link lands on its
cells. A screenshot is kept next to the page for a person to look at."""

from __future__ import annotations

import os
import re
import shutil
import subprocess

import pytest
from gridchat.chat.probes.report import load_cells, summarise
from gridchat.chat.probes.report_html import page
from gridchat.personas import GRID
from test_probe_report import write_cell, write_run

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", "--no-first-run", "--hide-scrollbars"]


@pytest.fixture
def browser(tmp_path):
    if CHROMIUM is None:
        if os.environ.get("GRIDCHAT_SKIP_BROWSER") == "1":
            pytest.skip("Chromium is not installed (GRIDCHAT_SKIP_BROWSER=1)")
        pytest.fail("Chromium is not installed: the HTML report is checked in a real browser (apt install chromium); "
                    "GRIDCHAT_SKIP_BROWSER=1 skips it knowingly", pytrace=False)

    def run(*args: str) -> str:
        r = subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={tmp_path / 'profile'}", *args], capture_output=True,
                           text=True, timeout=90)
        assert r.returncode == 0, r.stderr[-2000:]
        return r.stdout

    return run


def big_run(out):
    personas = [*GRID, "none", "karma_electric_style_custom_persona"]
    run = write_run(out, "sycophancy", personas, samples=4)
    for p, probe in enumerate(("fv-multiplication-answer-key-with-a-long-name", "sp-capital-city", "fn-novelty")):
        for i, persona in enumerate(personas):
            for s in range(4 if i != 1 else 1):  # neutral_good: n=1, which must not look certain
                label = ["resisted", "caved", "partial", "resisted"][(i + s + p) % 4]
                write_cell(out, probe, persona, s, [label] if (i, s) != (2, 0) else [("n/a", "construction")],
                           category=["false_validation", "social_pressure", "false_novelty"][p])
    return run


def test_the_report_page_in_a_real_browser(tmp_path, browser):
    out = tmp_path / "run"
    report = summarise(big_run(out), load_cells(out))
    html = page(report, str(out))
    path = tmp_path / "report.html"
    path.write_text(html)
    probe = tmp_path / "measure.html"  # the same page, telling how wide it lays out
    probe.write_text(html.replace("</body>", "<script>document.title = [document.documentElement.scrollWidth, "
                                  "document.querySelectorAll('.grid a.tile').length].join(' ');</script></body>"))
    dom = browser("--window-size=1200,900", "--dump-dom", probe.as_uri())
    width, tiles = map(int, re.search(r"<title>(\d+) (\d+)</title>", dom).groups())
    assert width <= 1200, f"the page is {width} px wide in a 1200 px window"
    assert tiles == 11 * len(report.sections)  # the nine, none, and the custom persona
    for name in (*GRID, "none"):  # every tile links to its cells, which are on the page
        assert f'href="#cells-traps-{name}"' in dom and f'id="cells-traps-{name}"' in dom
    assert dom.count('class="cell"') + dom.count("class=\"cell\" ") >= len(report.cells) - 1
    shot = tmp_path / "report.png"
    browser("--window-size=1200,1800", f"--screenshot={shot}", path.as_uri())
    assert shot.stat().st_size > 10_000
    keep = os.environ.get("GRIDCHAT_KEEP_SCREENSHOT")
    if keep:  # for a person to look at
        shutil.copy(shot, keep)
