"""The scale bench runs: `python -m bench probe-scale --quick` prints its whole table (its figures
are read by people, not checked here: tests time nothing)."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_the_scale_bench_runs_and_prints_its_table():
    r = subprocess.run([sys.executable, "-m", "bench", "probe-scale", "--quick"], cwd=ROOT, capture_output=True,
                       text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    out = r.stdout
    for row in ("wall raw", "short · 9 streams", "short · 18 streams", "300-token · 9 streams", "300-token · 18 streams",
                "CPU per reply token, unpaced", "32 streams, short: chat exit 0, 0 cells unfinished", "2 servers × 18 streams",
                "peak RSS 90 cells", "the fake's own limit"):
        assert row in out, (row, out)
    assert "(errors!)" not in out and "Traceback" not in r.stderr, out + r.stderr
