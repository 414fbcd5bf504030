"""Smoke test for bench/report.py: python3 -m unittest bench/test_report.py (needs matplotlib)."""

import json
import subprocess
import sys
import tempfile
import unittest
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPORT = HERE / "report.py"
SAMPLE = HERE / "sample-results.json"
PLOTS = ("http.png", "websocket.png", "lateness.png", "memory.png", "soak.png")
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def run_report(results: Path, out: Path) -> str:
    md = out / "docs" / "benchmarks.md"
    plots = out / "docs" / "benchmarks"
    subprocess.run(
        [sys.executable, str(REPORT), str(results), "--out-md", str(md), "--plots", str(plots)],
        check=True,
        capture_output=True,
        text=True,
    )
    for name in PLOTS:
        png = plots / name
        if not png.is_file() or png.read_bytes()[:8] != PNG_MAGIC:
            raise AssertionError(f"{png} is missing or not a PNG")
    return md.read_text(encoding="utf-8")


def summary_table(md: str) -> str:
    start = md.index("## Targets")
    return md[start : md.index("\n## ", start + 1)]


class ReportTest(unittest.TestCase):
    def test_sample(self):
        data = json.loads(SAMPLE.read_text(encoding="utf-8"))
        with tempfile.TemporaryDirectory() as tmp:
            md = run_report(SAMPLE, Path(tmp))
        targets = summary_table(md)
        expected = [
            "WebSocket RTT p50: idlegate ≤ nginx",
            "WebSocket RTT p99: idlegate ≤ nginx",
            "idlegate memory per idle tab session ≤ 16 KiB",
            "idlegate CPU while tabs idle < 0.5 %",
            "≥ 99 % of sessions end within 1 s of their deadline",
            "App gives back ≥ 90 % of the sessions' memory ≤ 30 s after they end (with idlegate)",
            "Same app without idlegate (for comparison)",
            "Redis: commands per idle tab per minute = 0",
        ]
        for f in data["http"]["files"]:
            expected.append(f"HTTP throughput, `{f}`: idlegate ≥ 1.0× nginx")
            expected.append(f"HTTP p99 latency, `{f}`: idlegate ≤ nginx")
        for line in expected:
            self.assertIn(line, targets)
        self.assertNotIn("not run", targets)
        for row in targets.splitlines()[4:]:
            if row.startswith("|"):
                self.assertRegex(row, r"\*\*(pass|FAIL)\*\*|reference")
        for name in PLOTS:
            self.assertIn(f"](benchmarks/{name})", md)
        for section in ("## Method", "## Machine", "## HTTP", "## WebSocket",
                        "## Shared store: Redis", "## Limits of this run"):
            self.assertIn(section, md)
        store = md[md.index("## Shared store: Redis"):md.index("## Soak")]
        for label in ("direct (no proxy)", "idlegate, memory store", "idlegate, Redis store",
                      "Redis / memory", "per idle tab per minute", "per new tab",
                      "per replica per minute"):
            self.assertIn(label, store)
        for note in data["notes"]:
            self.assertIn(note, md)
        self.assertIn(data["machine"]["cpu"], md)

    def test_missing_scenarios(self):
        data = json.loads(SAMPLE.read_text(encoding="utf-8"))
        for key in ("http", "websocket", "memory", "soak", "store"):
            del data[key]
        del data["scale"]["fake"]
        with tempfile.TemporaryDirectory() as tmp:
            results = Path(tmp) / "partial.json"
            results.write_text(json.dumps(data), encoding="utf-8")
            md = run_report(results, Path(tmp))
        targets = summary_table(md)
        for line in targets.splitlines()[4:]:
            if line.startswith("|"):
                self.assertIn("not run", line)
        self.assertIn("## Shared store: Redis", md)


if __name__ == "__main__":
    unittest.main()
