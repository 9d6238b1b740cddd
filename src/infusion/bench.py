"""``infusion bench``: methods over benchmark cases, quality and cost tables."""

from __future__ import annotations

import argparse
from pathlib import Path

DEFAULT_CASES = Path(__file__).resolve().parents[3] / "shared" / "bench" / "cases"


def add_bench_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--cases", default=None, help="folder of cases (default: ../shared/bench/cases when present)")
    p.add_argument("--methods", nargs="+", default=["infusion"], help="methods to run")
    p.add_argument("--tier", nargs="+", default=None, help="only these tiers (tiny, medium, standard, removal, long)")
    p.add_argument("--case", nargs="+", default=None, help="only cases whose name contains one of these")
    p.add_argument("--mask", nargs="+", default=None, help="only these mask variants")
    p.add_argument("--preset", default=None, help="preset of every method that has presets")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--samples", type=int, default=1, help="samples per run (diversity when > 1)")
    p.add_argument("-o", "--output", default="bench-out", help="results folder (default bench-out)")
    p.add_argument("--rerun", action="store_true", help="recompute runs already in results.csv")
    p.add_argument("--threads", type=int, default=None)


def run_bench_command(args) -> int:
    raise NotImplementedError("bench: being written")
