"""`python -m bench [NAME ...] [--json] [--list]`: run benchmarks and print their tables.

Benchmarks are found, not listed: every module of this package with `NAME`,
`DESCRIPTION` and `run()` (see `bench/__init__.py`), so a new one needs no
edit here. With `--json` each row is one JSON line (plus `"benchmark"`),
for keeping figures or comparing runs.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import os
import pkgutil
import platform
import sys
import time
from pathlib import Path
from types import ModuleType
from typing import Any

import bench


def discover() -> dict[str, ModuleType]:
    """Benchmark modules by NAME, in file-name order."""
    found: dict[str, ModuleType] = {}
    for info in sorted(pkgutil.iter_modules(bench.__path__), key=lambda i: i.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"bench.{info.name}")
        if callable(getattr(module, "run", None)) and hasattr(module, "NAME"):
            found[module.NAME] = module
    return found


def with_ratios(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Add `ratio` to each row that names a baseline row measured in the same run."""
    by_case = {row["case"]: row for row in rows}
    for row in rows:
        base = by_case.get(row.get("baseline", ""))
        metric = row.get("metric", "median_ms")
        if "ratio" in row or base is None:
            continue
        if isinstance(row.get(metric), int | float) and base.get(metric):
            row["ratio"] = round(row[metric] / base[metric], 2)
    return rows


def table(rows: list[dict[str, Any]]) -> str:
    """A plain-text table: `case` first, then every figure any row has, `ratio` and `baseline` last."""
    hidden = {"case", "baseline", "ratio", "metric"}
    columns = ["case"]
    for row in rows:
        columns += [key for key in row if key not in hidden and key not in columns]
    columns += ["ratio", "baseline"]
    cells = [[_cell(row, column) for column in columns] for row in rows]
    widths = [max(len(column), *(len(line[i]) for line in cells)) for i, column in enumerate(columns)]
    lines = [_line(columns, widths), _line(["-" * w for w in widths], widths)]
    lines += [_line(line, widths) for line in cells]
    return "\n".join(lines)


def _line(cells: list[str], widths: list[int]) -> str:
    """Names left-aligned, figures right-aligned."""
    return "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths, strict=True)))


def _cell(row: dict[str, Any], column: str) -> str:
    value = row.get(column)
    if value is None:
        return ""
    if column == "ratio":
        return f"{value:g}x"
    return f"{value:g}" if isinstance(value, float) else str(value)


def machine() -> str:
    """What the figures were taken on: CPUs, CPU model, RAM, Python, load (the noise floor)."""
    model, ram_gb = platform.processor() or platform.machine(), 0.0
    with contextlib.suppress(OSError):
        cpuinfo = Path("/proc/cpuinfo").read_text()
        model = next((line.split(":", 1)[1].strip() for line in cpuinfo.splitlines() if "model name" in line), model)
    with contextlib.suppress(OSError, StopIteration, ValueError):
        meminfo = Path("/proc/meminfo").read_text().splitlines()
        ram_gb = int(next(line for line in meminfo if line.startswith("MemTotal")).split()[1]) / 1024**2
    load = f", load {os.getloadavg()[0]:.1f}" if hasattr(os, "getloadavg") else ""
    return (
        f"{os.cpu_count()} CPUs ({model}), {ram_gb:.0f} GB RAM, "
        f"{platform.python_implementation()} {platform.python_version()}{load}"
    )


def main(argv: list[str] | None = None) -> int:
    available = discover()
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", metavar="NAME", help=f"one of: {', '.join(available)} (default: all)")
    parser.add_argument("--json", action="store_true", help="one JSON line per row instead of tables")
    parser.add_argument("--list", action="store_true", help="list the benchmarks and exit")
    args = parser.parse_args(argv)
    if args.list:
        for name, module in available.items():
            print(f"{name:14} {getattr(module, 'DESCRIPTION', '')}")
        return 0
    unknown = [name for name in args.names if name not in available]
    if unknown:
        parser.error(f"unknown benchmark {', '.join(unknown)}; choose from {', '.join(available)}")
    if not args.json:
        print(f"# {machine()}, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    for name in args.names or list(available):
        module = available[name]
        if not args.json:
            print(f"\n## {name}: {getattr(module, 'DESCRIPTION', '')}", flush=True)
        started = time.monotonic()
        rows = with_ratios(module.run())
        if args.json:
            for row in rows:
                print(json.dumps({"benchmark": name, **row}), flush=True)
        else:
            print(table(rows))
            print(f"({time.monotonic() - started:.0f} s)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
