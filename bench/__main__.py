"""python -m bench --db sqlite|postgres [--quick] [--only W1,W2] [--repeat N] [--metrics on|off]

Prints one JSON line per workload run, then a table of medians. W6 reports the peak RSS of
the whole process: run it alone (--only W6) for a figure of W6 itself. Durability is the same as in
production: every checkpoint is committed and fsynced before the workflow moves on.
"""

from __future__ import annotations

import argparse
import json
import statistics
from typing import Any

from bench import setup, workloads


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--db", choices=["sqlite", "postgres"], required=True)
    parser.add_argument("--quick", action="store_true", help="smaller counts, for a smoke run")
    parser.add_argument("--only", default="", help="comma-separated workload ids")
    parser.add_argument("--repeat", type=int, default=1, help="runs per workload (median shown)")
    parser.add_argument(
        "--metrics",
        choices=["on", "off", "both"],
        default="on",
        help="whether the engines report worker metrics; both: each run twice per repeat, "
        "interleaved in alternating order, with the cost in percent (median on vs off)",
    )
    parser.add_argument("--no-metrics", action="store_true", help="the same as --metrics off")
    args = parser.parse_args()
    settings = {"on": [True], "off": [False], "both": [False, True]}[
        "off" if args.no_metrics else args.metrics
    ]
    # W6, W6b and W8 measure peak RSS, W7 seeds a million rows, GC deletes many and FAIR
    # enqueues 10,500: each is run on request (--only), W6b and W8 with W2 for the ratio.
    default = [
        w for w in workloads.WORKLOADS if w not in ("W6", "W6b", "W7", "W8", "GC", "FAIR", "SCHED")
    ]
    chosen = [w for w in workloads.WORKLOADS if w in args.only.split(",")] if args.only else default
    table: list[dict[str, Any]] = []
    for workload in chosen:
        runs: dict[bool, list[dict[str, Any]]] = {setting: [] for setting in settings}
        for repeat in range(args.repeat):
            # Interleaved, the order alternating: a change of load hits both alike.
            for setting in settings if repeat % 2 == 0 else settings[::-1]:
                workloads.METRICS = setting
                with setup.fresh_database(args.db) as target:
                    figures = {"db": args.db, **workloads.WORKLOADS[workload](target, args.quick)}
                if len(settings) > 1:
                    figures["metrics"] = "on" if setting else "off"
                print(json.dumps(figures), flush=True)
                runs[setting].append(figures)
        medians = {setting: _median(found) for setting, found in runs.items()}
        if len(settings) > 1:
            medians[True]["cost_pct"] = _cost_pct(medians[False], medians[True])
        table.extend(medians.values())
    print()
    print(
        f"{'workload':<13} {'db':<9} {'n':>6} {'seconds':>9} {'per_sec':>9} {'ms_each':>9}  extra"
    )
    for row in table:
        extra = {
            k: v
            for k, v in row.items()
            if k not in ("workload", "db", "n", "seconds", "per_sec", "ms_each")
        }
        print(
            f"{row['workload']:<13} {row['db']:<9} {row['n']:>6} {row['seconds']:>9.3f} "
            f"{row['per_sec']:>9.1f} {row['ms_each']:>9.3f}  {extra or ''}"
        )


def _median(runs: list[dict[str, Any]]) -> dict[str, Any]:
    median = dict(runs[0])
    for key in ("seconds", "per_sec", "ms_each", "ms_per_step", "python_cpu_us", "db_cpu_us"):
        if median.get(key) is not None:
            median[key] = round(statistics.median(r[key] for r in runs), 4)
    return median


def _cost_pct(off: dict[str, Any], on: dict[str, Any]) -> float:
    """How much longer each workflow (or step) took with metrics on, in percent of off."""
    key = "ms_per_step" if "ms_per_step" in off else "ms_each"
    return round(100 * (on[key] / off[key] - 1), 1)


if __name__ == "__main__":
    main()
