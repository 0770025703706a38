"""Run every benchmark and print one table: ``python -m benchmarks.run [--quick] [NAME ...]``.

Each ``benchmarks/bench_*.py`` module has ``run(quick: bool) -> list[Row]``. A row is one
figure, with the baseline measured in the same run when there is one, the ratio ours/baseline
(or figure/target when there is no baseline) and whether the target is met.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
from dataclasses import dataclass
from pathlib import Path


@dataclass
class Row:
    benchmark: str
    figure: float
    unit: str
    baseline: float | None = None   # the same figure for the baseline, same run
    target: str = ""                # e.g. "ratio >= 2.0", "<= 20 ms"
    ok: bool | None = None
    note: str = ""

    @property
    def ratio(self) -> float | None:
        if self.baseline:
            return self.figure / self.baseline
        return None


def discover() -> list[str]:
    here = Path(__file__).parent
    return sorted(m.name for m in pkgutil.iter_modules([str(here)]) if m.name.startswith("bench_"))


def format_table(rows: list[Row]) -> str:
    header = ("benchmark", "figure", "baseline", "ratio", "target", "met")
    lines = [header]
    for r in rows:
        lines.append((
            r.benchmark, f"{r.figure:,.1f} {r.unit}",
            "" if r.baseline is None else f"{r.baseline:,.1f} {r.unit}",
            "" if r.ratio is None else f"{r.ratio:.2f}",
            r.target, "" if r.ok is None else ("yes" if r.ok else "NO"),
        ))
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    out = ["  ".join(cell.ljust(w) for cell, w in zip(line, widths)).rstrip() for line in lines]
    out.insert(1, "  ".join("-" * w for w in widths))
    notes = [f"  {r.benchmark}: {r.note}" for r in rows if r.note]
    return "\n".join(out + (["", "notes:"] + notes if notes else []))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="shorter runs (CI smoke test)")
    parser.add_argument("names", nargs="*", help="bench_* modules to run (default: all)")
    args = parser.parse_args(argv)
    rows: list[Row] = []
    for name in args.names or discover():
        module = importlib.import_module(f"benchmarks.{name}")
        print(f"running {name} ...", file=sys.stderr, flush=True)
        rows.extend(module.run(args.quick))
    print(format_table(rows))
    return 0 if all(r.ok is not False for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
