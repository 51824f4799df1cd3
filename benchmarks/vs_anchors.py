"""convlens's PyTorch front-end against the existing analysis tools (issue 6).

    python benchmarks/vs_anchors.py              # speed and memory, all models, 3 repeats
    python benchmarks/vs_anchors.py --quick      # ResNet-50 only, 2 repeats, no 2048²
    python benchmarks/vs_anchors.py --models mobilenet_v3_small,densenet121 --repeats 5
                                                 # those analysis calls only
    python benchmarks/vs_anchors.py --baseline ../old-checkout
                                                 # + convlens from another source tree
    python benchmarks/vs_anchors.py --compare    # each tool's numbers (docs/tool_comparison.md)

The anchor tools are benchmark-only; install them without letting pip touch torch:

    pip install -c <(echo torch==2.13.0) -r benchmarks/requirements-anchors.txt

Every speed figure is the median over fresh processes (one subprocess per measurement,
tools interleaved round-robin so that load drifts hit all of them alike):

- ``cold``: the first analysis call in a fresh process — torch, the tool and the model
  are imported and built (on the CPU, real weights) before the clock starts, the input
  tensor too; only the call is timed;
- ``warm``: the median of the next five calls in the same process. Not the second call
  alone: a fresh process that has just imported torch is due a full cyclic-GC pass over
  torch's ~170,000 objects (~0.05–0.1 s), and which call it lands in depends on how many
  objects each call allocates, not on how fast the tool is; the median of five leaves
  that one-off out for every tool alike;
- ``peak``: ``ru_maxrss`` of the process after all calls (model weights included);
- ``process``: the whole command — ``convlens analyze zoo:resnet50 --input 3x224x224 -f
  json`` against ``python -c`` that imports the tool, builds the model and runs it —
  wall time and the child's ``ru_maxrss`` from ``os.wait4``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

# ---------------------------------------------------------------------------------------
# The analysis call of each tool: (model, input shape (N, C, H, W), input tensor) → None.
# Each returns (params, macs, flops) as the tool reports them (None where it has none).
# ---------------------------------------------------------------------------------------


def _convlens(model: Any, shape: tuple[int, ...], x: Any, convention: str = "full") -> tuple:
    import convlens

    totals = convlens.analyze(model, input_size=shape, convention=convention).totals
    return totals.params, totals.macs, totals.flops


def _torchinfo(model: Any, shape: tuple[int, ...], x: Any) -> tuple:
    import torchinfo

    stats = torchinfo.summary(model, input_size=shape, verbose=0)
    return stats.total_params, stats.total_mult_adds, None


def _fvcore(model: Any, shape: tuple[int, ...], x: Any) -> tuple:
    from fvcore.nn import FlopCountAnalysis, parameter_count

    analysis = FlopCountAnalysis(model, x)
    analysis.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
    return parameter_count(model)[""], analysis.total(), None  # its "flops" are MACs


def _ptflops(backend: str) -> Callable[..., tuple]:
    def call(model: Any, shape: tuple[int, ...], x: Any) -> tuple:
        from ptflops import get_model_complexity_info

        macs, params = get_model_complexity_info(
            model, tuple(shape[1:]), as_strings=False, print_per_layer_stat=False, backend=backend
        )
        return params, macs, None

    return call


def _thop(model: Any, shape: tuple[int, ...], x: Any) -> tuple:
    import thop

    macs, params = thop.profile(model, inputs=(x,), verbose=False)
    return params, macs, None


def _torchscan(model: Any, shape: tuple[int, ...], x: Any) -> tuple:
    import torchscan

    totals = torchscan.crawl_module(model, tuple(shape[1:]))["totals"]
    return (totals["parameters"]["value"], totals["macs"]["value"], totals["module_flops"]["value"])


def _calflops(model: Any, shape: tuple[int, ...], x: Any) -> tuple:
    from calflops import calculate_flops

    flops, macs, params = calculate_flops(
        model=model,
        input_shape=tuple(shape),
        output_as_string=False,
        print_results=False,
        print_detailed=False,
    )
    return params, macs, flops


def _flop_counter(model: Any, shape: tuple[int, ...], x: Any) -> tuple:
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(x)
    return None, None, counter.get_total_flops()


TOOLS: dict[str, tuple[str, Callable[..., tuple]]] = {
    # name → (module imported before the clock starts, analysis call)
    "convlens": ("convlens", _convlens),
    "torchinfo": ("torchinfo", _torchinfo),
    "fvcore": ("fvcore.nn", _fvcore),
    "ptflops-pytorch": ("ptflops", _ptflops("pytorch")),
    "ptflops-aten": ("ptflops", _ptflops("aten")),
    "thop": ("thop", _thop),
    "torchscan": ("torchscan", _torchscan),
    "calflops": ("calflops", _calflops),
    "FlopCounterMode": ("torch.utils.flop_counter", _flop_counter),
}
ANCHORS = [name for name in TOOLS if name != "convlens"]

MODELS = [
    ("resnet50", 224),
    ("vgg16", 224),
    ("mobilenet_v2", 224),
    ("densenet121", 224),
    ("mobilenet_v3_small", 224),
    ("efficientnet_b0", 224),
    ("unet_same", 256),
]
BIG = ("resnet50", 2048)
THREADS = 1  # torch intra-op threads in every child (--threads)
BIG_TOOLS = ["thop", "torchinfo", "FlopCounterMode"]  # the fastest at 224²; a real
# forward at 2048² costs ≈ 10–25 s a call, so the slow ones are left to ANCHORS.md.

# The whole-process command of each tool (ResNet-50, 224²).
BUILD = "from convlens.zoo import create_model; m = create_model('resnet50'); "
PROCESS: dict[str, str] = {
    "torchinfo": "import torchinfo; " + BUILD + "torchinfo.summary(m, input_size=(1, 3, 224, 224))",
    "fvcore": "import torch; from fvcore.nn import FlopCountAnalysis; "
    + BUILD
    + "print(FlopCountAnalysis(m, torch.randn(1, 3, 224, 224)).total())",
    "ptflops-pytorch": "from ptflops import get_model_complexity_info as g; "
    + BUILD
    + "print(g(m, (3, 224, 224), backend='pytorch'))",
    "ptflops-aten": "from ptflops import get_model_complexity_info as g; "
    + BUILD
    + "print(g(m, (3, 224, 224), backend='aten'))",
    "thop": "import torch, thop; "
    + BUILD
    + "print(thop.profile(m, inputs=(torch.randn(1, 3, 224, 224),)))",
    "torchscan": "import torchscan; " + BUILD + "torchscan.summary(m, (3, 224, 224))",
    "calflops": "from calflops import calculate_flops; "
    + BUILD
    + "calculate_flops(model=m, input_shape=(1, 3, 224, 224))",
    "FlopCounterMode": "import torch; from torch.utils.flop_counter import FlopCounterMode; "
    + BUILD
    + "\nwith torch.no_grad(), FlopCounterMode(): m(torch.randn("
    "1, 3, 224, 224))",
}


# ---------------------------------------------------------------------------------------
# One measurement: runs in its own process.
# ---------------------------------------------------------------------------------------
WARM_CALLS = 5  # warm = their median


def worker(tool: str, model_name: str, size: int, calls: int) -> dict[str, Any]:
    import importlib

    module_name, call = TOOLS[tool]
    importlib.import_module(module_name)
    import torch

    from convlens.zoo import create_model

    torch.manual_seed(0)
    model = create_model(model_name)
    shape = (1, 3, size, size)
    # convlens needs only the shape: no input tensor, so its peak RSS is its own (a 2048²
    # input alone is 48 MiB)
    x = None if tool == "convlens" else torch.randn(shape)
    times = []
    for _ in range(calls):
        start = time.perf_counter()
        call(model, shape, x)
        times.append(time.perf_counter() - start)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux
    warm = statistics.median(times[1:]) if calls > 1 else None
    return {"cold": times[0], "warm": warm, "peak": peak}


def child_env() -> dict[str, str]:
    """The thread count for every child (``--threads``): on a shared 2-core machine a
    second intra-op thread spins against other jobs and makes real forwards 10–40× slower,
    which would flatter convlens (it computes nothing).

    Bytecode is written and reused (``PYTHONDONTWRITEBYTECODE`` is dropped): the other
    tools come from site-packages, compiled when pip installed them, while an editable
    convlens would otherwise compile its tracer inside every cold call."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    return {**env, "OMP_NUM_THREADS": str(THREADS), "MKL_NUM_THREADS": str(THREADS)}


BASELINE_TOOL = "convlens baseline"  # convlens imported from --baseline's source tree
BASELINE: str | None = None  # that tree's src folder


def run_worker(tool: str, model_name: str, size: int, calls: int) -> dict[str, Any]:
    """One measurement in a fresh process. The baseline is convlens itself, imported from
    the other tree's ``src`` (put first on the path), and measured in the same rounds as
    the tools: the way to see what a change did, since this shared machine's speed drifts
    by a third between runs, and not alike for convlens's Python and the tools' kernels."""
    env = child_env()
    if tool == BASELINE_TOOL:
        tool, env = "convlens", {**env, "PYTHONPATH": BASELINE or ""}
    command = [sys.executable, __file__, "--worker", tool, model_name, str(size), str(calls)]
    done = subprocess.run(command, capture_output=True, text=True, check=False, env=env)
    if done.returncode != 0:
        tail = (done.stderr.strip().splitlines() or ["?"])[-1]
        return {"error": tail[:120]}
    return json.loads(done.stdout.strip().splitlines()[-1])


def run_process(command: list[str]) -> dict[str, Any]:
    """Wall time and peak resident memory of one whole child process."""
    start = time.perf_counter()
    child = subprocess.Popen(
        command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=child_env()
    )
    _, status, usage = os.wait4(child.pid, 0)
    wall = time.perf_counter() - start
    if status != 0:
        return {"error": f"exit status {status}"}
    return {"process": wall, "peak": usage.ru_maxrss * 1024}


def process_command(tool: str) -> list[str]:
    if tool == "convlens":
        return [
            os.path.join(os.path.dirname(sys.executable), "convlens"),
            "analyze",
            "zoo:resnet50",
            "--input",
            "3x224x224",
            "-f",
            "json",
        ]
    return [sys.executable, "-c", PROCESS[tool]]


# ---------------------------------------------------------------------------------------
# Driver and table.
# ---------------------------------------------------------------------------------------
def median(runs: list[dict[str, Any]], key: str) -> float | None:
    values = [r[key] for r in runs if r.get(key) is not None]
    return statistics.median(values) if values else None


def summarise(runs: dict[str, list[dict[str, Any]]], keys: list[str]) -> dict[str, dict]:
    out: dict[str, dict] = {}
    for tool, results in runs.items():
        errors = [r["error"] for r in results if "error" in r]
        out[tool] = {key: median(results, key) for key in [*keys, "peak"]}
        out[tool]["error"] = errors[0] if errors and len(errors) == len(results) else None
    return out


def measure_case(
    tools: list[str], model_name: str, size: int, repeats: int, calls: int
) -> dict[str, dict]:
    runs: dict[str, list] = {tool: [] for tool in tools}
    for _ in range(repeats):
        for tool in tools:  # round-robin: a load spike hits one round of every tool
            runs[tool].append(run_worker(tool, model_name, size, calls))
    return summarise(runs, ["cold", "warm"])


def measure_processes(tools: list[str], repeats: int) -> dict[str, dict]:
    runs: dict[str, list] = {tool: [] for tool in tools}
    for _ in range(repeats):
        for tool in tools:
            runs[tool].append(run_process(process_command(tool)))
    return summarise(runs, ["process"])


def seconds(value: float | None) -> str:
    """Three decimals, four under 0.1 s: convlens's warm calls on the small nets take a
    few milliseconds, where a third decimal alone would round away a sixth of the time."""
    if value is None:
        return "—"
    return f"{value:.4f}" if value < 0.1 else f"{value:.3f}"


def ratio(tool: float | None, ours: float | None) -> str:
    return "—" if tool is None or not ours else f"{tool / ours:.1f}×"


def mib(value: float | None) -> str:
    return "—" if value is None else f"{value / 2**20:,.0f}"


def table(title: str, result: dict[str, dict], keys: list[str]) -> str:
    ours = result["convlens"]
    head = "| tool | " + " | ".join(f"{k} (s) | {k} ÷ convlens" for k in keys)
    head += " | peak RSS (MiB) | peak ÷ convlens |"
    lines = [f"### {title}", "", head, "|---" * (len(keys) * 2 + 3) + "|"]
    for tool, r in result.items():
        if r["error"]:
            lines.append(f"| {tool} | failed: {r['error']} |")
            continue
        cells = [f"{seconds(r[k])} | {ratio(r[k], ours[k])}" for k in keys]
        lines.append(
            f"| {tool} | "
            + " | ".join(cells)
            + f" | {mib(r['peak'])} | {ratio(r['peak'], ours['peak'])} |"
        )
    fastest = {
        k: min(
            (
                (r[k], t)
                for t, r in result.items()
                if t not in ("convlens", BASELINE_TOOL) and r.get(k) is not None
            ),
            default=None,
        )
        for k in keys
    }
    for k, best in fastest.items():
        if best is not None and ours[k] is not None:
            verdict = "faster" if ours[k] < best[0] else "NOT faster"
            lines.append(
                f"\n{k}: convlens {seconds(ours[k])} s is {verdict} than the fastest "
                f"tool ({best[1]} {seconds(best[0])} s, {best[0] / ours[k]:.1f}×)"
            )
    return "\n".join(lines) + "\n"


def chosen_models(text: str) -> list[tuple[str, int]]:
    """``--models a,b``: those of ``MODELS``, in its order; an unknown name is refused."""
    chosen = text.split(",")
    unknown = sorted(set(chosen) - {name for name, _ in MODELS})
    if unknown:
        names = ", ".join(name for name, _ in MODELS)
        raise SystemExit(f"--models: unknown {', '.join(unknown)}; choose from {names}")
    return [(name, size) for name, size in MODELS if name in chosen]


def speed(args: argparse.Namespace) -> None:
    repeats = args.repeats or (2 if args.quick else 3)
    models = MODELS[:1] if args.quick else MODELS
    if args.models:
        models = chosen_models(args.models)
    tools = ["convlens", *([BASELINE_TOOL] if BASELINE else []), *ANCHORS]
    load = os.getloadavg()
    print(
        f"# {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
        f"{platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} CPUs, load {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}, "
        f"python {platform.python_version()}, {repeats} fresh processes per figure, "
        f"{THREADS} torch thread(s)\n"
    )
    for ours in tools[: 2 if BASELINE else 1]:  # untimed: writes convlens's bytecode
        run_worker(ours, *models[0], calls=1)
    for name, size in models:
        result = measure_case(tools, name, size, repeats, calls=WARM_CALLS + 1)
        print(
            table(f"{name} 1×3×{size}×{size}: analysis call", result, ["cold", "warm"]), flush=True
        )
    if args.models:  # the chosen analysis calls only
        return
    result = measure_processes([t for t in tools if t != BASELINE_TOOL], repeats)
    print(
        table(
            "whole process, ResNet-50 224² (`convlens analyze zoo:resnet50 --input "
            "3x224x224 -f json` vs `python -c …`)",
            result,
            ["process"],
        ),
        flush=True,
    )
    if not args.quick:
        name, size = BIG
        ours = measure_case(["convlens"], name, size, repeats, calls=WARM_CALLS + 1)
        theirs = measure_case(BIG_TOOLS, name, size, 1, calls=1)
        print(
            table(
                f"{name} 1×3×{size}×{size}: analysis call (tools: 1 process, cold only)",
                {**ours, **theirs},
                ["cold"],
            ),
            flush=True,
        )
    load = os.getloadavg()
    print(f"load at the end: {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}")


# ---------------------------------------------------------------------------------------
# --compare: what each tool reports on a few telling cases.
# ---------------------------------------------------------------------------------------
def compare_cases() -> list[tuple[str, Any, tuple[int, ...]]]:
    import torch
    from torch import nn

    from convlens.zoo import create_model

    class SharedConv(nn.Module):
        """One Conv2d called twice: 2,320 parameters, 2 × 2,359,296 MACs."""

        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(16, 16, 3, padding=1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.conv(torch.relu(self.conv(x)))

    torch.manual_seed(0)
    return [
        ("ResNet-50 (1×3×224×224)", create_model("resnet50"), (1, 3, 224, 224)),
        ("MobileNetV2 (1×3×224×224)", create_model("mobilenet_v2"), (1, 3, 224, 224)),
        (
            "ConvTranspose2d(64, 32, 4, stride=2, padding=1) on 1×64×32×32",
            nn.ConvTranspose2d(64, 32, 4, stride=2, padding=1),
            (1, 64, 32, 32),
        ),
        (
            "depthwise Conv2d(64, 64, 3, padding=1, groups=64) on 1×64×56×56",
            nn.Conv2d(64, 64, 3, padding=1, groups=64),
            (1, 64, 56, 56),
        ),
        (
            "one Conv2d(16, 16, 3, padding=1) called twice on 1×16×32×32",
            SharedConv(),
            (1, 16, 32, 32),
        ),
    ]


def number(value: Any) -> str:
    if value is None:
        return "—"
    return f"{int(value):,}" if float(value).is_integer() else f"{value:,.1f}"


def compare() -> None:
    import contextlib
    import io
    import warnings

    import torch

    warnings.filterwarnings("ignore")
    for title, model, shape in compare_cases():
        x = torch.randn(shape)
        rows = []
        for tool in ["convlens", "convlens 2mac", *ANCHORS]:
            call = (
                (lambda m, s, t: _convlens(m, s, t, "2mac"))
                if tool == "convlens 2mac"
                else TOOLS[tool][1]
            )
            try:
                with (
                    contextlib.redirect_stdout(io.StringIO()),
                    contextlib.redirect_stderr(io.StringIO()),
                ):
                    params, macs, flops = call(model, shape, x)
            except Exception as err:  # a tool that fails on a case is a finding
                rows.append(f"| {tool} | failed: {type(err).__name__}: {str(err)[:80]} | | | |")
                continue
            if tool == "convlens":
                reference = macs
            delta = (
                "—"
                if macs is None
                else (f"{macs - reference:+,} ({(macs - reference) / reference:+.2%})")
            )
            rows.append(
                f"| {tool} | {number(params)} | {number(macs)} | {delta} | {number(flops)} |"
            )
        print(f"### {title}\n")
        print("| tool | params | MACs reported | vs convlens MACs | FLOPs reported |")
        print("|---|---:|---:|---:|---:|")
        print("\n".join(rows) + "\n", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="ResNet-50 only, 2 repeats")
    parser.add_argument("--repeats", type=int, default=0, help="fresh processes per figure")
    parser.add_argument(
        "--models", default="", help="comma-separated: only these models' analysis calls"
    )
    parser.add_argument(
        "--baseline",
        default="",
        help="another convlens checkout, measured beside this one (its src/ first on the path)",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch/OpenMP threads in each measured process (default 1)",
    )
    parser.add_argument("--compare", action="store_true", help="print each tool's numbers")
    parser.add_argument(
        "--worker", nargs=4, metavar=("TOOL", "MODEL", "SIZE", "CALLS"), help=argparse.SUPPRESS
    )
    args = parser.parse_args()
    global THREADS, BASELINE
    THREADS = args.threads
    if args.baseline:
        BASELINE = os.path.join(os.path.abspath(args.baseline), "src")
        if not os.path.isdir(os.path.join(BASELINE, "convlens")):
            raise SystemExit(f"--baseline: no src/convlens under {args.baseline}")
    if args.worker:
        tool, model_name, size, calls = args.worker
        print(json.dumps(worker(tool, model_name, int(size), int(calls))))
    elif args.compare:
        compare()
    else:
        speed(args)


if __name__ == "__main__":
    main()
