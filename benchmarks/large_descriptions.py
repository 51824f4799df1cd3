"""Time and memory of analysing and rendering very long descriptions (issue 15).

    python benchmarks/large_descriptions.py                 # 5,000, 20,000, 100,000 layers
    python benchmarks/large_descriptions.py --sizes 20000 --rich-up-to 20000

Each description alternates ``conv2d 3 k=3 p=1`` and ``relu``, one layer a line. Every
figure is one fresh process. A *whole command* row runs what ``convlens analyze FILE -f
FORMAT`` runs (the CLI's own command through Typer's runner, output to a buffer): imports,
parsing, analysis and rendering. A *drawn by* row times only the drawing of the terminal
table, on the report the process has just built: by ``BoxTable`` (convlens now) and by
``rich.table.Table`` (how convlens drew it before, cell by cell), the latter for the sizes
up to ``--rich-up-to``. Figures: **wall** and **CPU** seconds, and the process's peak
memory (``ru_maxrss``, imports and the report included).

The CPU seconds are the figure to compare: the machine's two cores are shared, so wall
time also counts other jobs' work.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

FORMATS = ("table", "json", "csv", "markdown")

# Runs in the measured process: the CLI command, or the old way of drawing the table.
CHILD = r"""
import io, json, resource, sys, time
mode, path, fmt = sys.argv[1:4]
wall, cpu = time.perf_counter(), time.process_time()
if mode == "cli":
    from typer.testing import CliRunner
    from convlens.cli.main import app
    result = CliRunner().invoke(app, ["analyze", path, "-f", fmt])
    assert result.exit_code == 0, result.output[-2000:]
    lines = result.output.count("\n")
else:  # drawing the table alone, on the report the process has just built
    from rich.console import Console
    from convlens.api import analyze, gc_paused
    from convlens.render.table import build_table
    report = analyze(path)
    boxed = build_table(report)
    table = boxed if mode == "box" else boxed.rich_table(boxed.rows)
    console = Console(file=io.StringIO(), width=200, color_system=None)
    wall, cpu = time.perf_counter(), time.process_time()
    with gc_paused():  # as the CLI draws
        console.print(table)
    lines = console.file.getvalue().count("\n")
print(json.dumps({
    "wall": time.perf_counter() - wall,
    "cpu": time.process_time() - cpu,
    "peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    "lines": lines,
}))
"""


def description(layers: int) -> str:
    body = ("conv2d 3 k=3 p=1" if i % 2 == 0 else "relu" for i in range(layers))
    return "input 3x32x32\n" + "\n".join(body) + "\n"


def measure(mode: str, path: Path, fmt: str) -> dict[str, float]:
    done = subprocess.run(
        [sys.executable, "-c", CHILD, mode, str(path), fmt],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(done.stdout.splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[5_000, 20_000, 100_000])
    parser.add_argument("--rich-up-to", type=int, default=20_000)
    args = parser.parse_args()

    print(
        f"# {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {platform.machine()}, "
        f"{os.cpu_count()} CPUs, load {' '.join(f'{x:.1f}' for x in os.getloadavg())}, "
        f"python {platform.python_version()}"
    )
    print()
    print("| layers | what | wall s | CPU s | CPU µs per layer | peak MiB | output lines |")
    print("|---:|---|---:|---:|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as folder:
        for size in args.sizes:
            path = Path(folder) / f"layers_{size}.cnn"
            path.write_text(description(size))
            runs = [(f"`-f {fmt}`, whole command", "cli", fmt) for fmt in FORMATS]
            runs.append(("table drawn by `BoxTable`", "box", "table"))
            if size <= args.rich_up_to:
                runs.append(("table drawn by `rich.table.Table`", "rich", "table"))
            for label, mode, fmt in runs:
                m = measure(mode, path, fmt)
                print(
                    f"| {size:,} | {label} | {m['wall']:.1f} | {m['cpu']:.1f} | "
                    f"{m['cpu'] / size * 1e6:.0f} | {m['peak_mib']:.0f} | {m['lines']:,} |",
                    flush=True,
                )


if __name__ == "__main__":
    main()
