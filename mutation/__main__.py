"""python -m mutation [--parts checkpoints,store] [--max-children N] [--keep]

Runs mutmut over the parts listed in pyproject.toml ([tool.mutmut.parts.*]), one part at a
time, and writes each part's score per module to docs/mutation/<part>.txt.

mutmut reads one [tool.mutmut] table from the pyproject.toml of the directory it runs in, and
one test selection serves every mutant of a run. Parts need different selections, so each part
runs in a directory of its own (.mutation/<part>/): links to the sources and tests, and a
pyproject.toml whose [tool.mutmut] is the shared settings plus that part's modules and tests.
Each part also keeps its own mutmut cache there.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

from tests.services import private_postgres

ROOT = Path(__file__).resolve().parents[1]
WORK = ROOT / ".mutation"
RESULTS = ROOT / "docs" / "mutation"
LINKED = ["engine", "console", "tests", "templates", "static", "demo", "docs", "manage.py"]

# mutmut's exit-code verdicts (mutmut/stats.py): a timeout or a kill by signal also means the
# tests noticed the mutant (it looped or crashed the worker), so both count as killed.
KILLED = {1, 3, 36, 37, -24, 24, 152, 255, -11, -9}
SURVIVED = {0}
NO_TESTS = {5, 33}


def toml_value(value: Any) -> str:
    """Strings, booleans and lists of them: JSON spells these as TOML does."""
    return json.dumps(value)


def part_pyproject(base: str, shared: dict[str, Any], part: dict[str, Any]) -> str:
    """The project's pyproject.toml with [tool.mutmut] (and its part tables) replaced by one
    flat table for this part."""
    kept = re.sub(r"(?ms)^\[tool\.mutmut(\.[^\]]*)?\].*?(?=^\[(?!tool\.mutmut)|\Z)", "", base)
    settings = {k: v for k, v in shared.items() if k != "parts"}
    settings["only_mutate"] = part["modules"]
    settings["pytest_add_cli_args_test_selection"] = part["tests"]
    table = "\n".join(f"{key} = {toml_value(value)}" for key, value in settings.items())
    return f"{kept.rstrip()}\n\n[tool.mutmut]\n{table}\n"


def prepare(name: str, shared: dict[str, Any], part: dict[str, Any], keep: bool) -> Path:
    work = WORK / name
    if not keep and work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True, exist_ok=True)
    for entry in LINKED:
        link = work / entry
        if not link.is_symlink():
            link.symlink_to(ROOT / entry)
    base = (ROOT / "pyproject.toml").read_text()
    (work / "pyproject.toml").write_text(part_pyproject(base, shared, part))
    return work


def verdicts(work: Path, module: str) -> dict[str, list[str]]:
    """Mutant names by verdict, from the .meta file mutmut keeps next to the mutated module."""
    meta = json.loads((work / "mutants" / f"{module}.meta").read_text())
    found: dict[str, list[str]] = {"killed": [], "survived": [], "no tests": [], "other": []}
    for mutant, code in sorted(meta["exit_code_by_key"].items()):
        if code in KILLED:
            found["killed"].append(mutant)
        elif code in SURVIVED:
            found["survived"].append(mutant)
        elif code in NO_TESTS:
            found["no tests"].append(mutant)
        else:
            found["other"].append(f"{mutant} (exit {code})")
    return found


def report(name: str, part: dict[str, Any], work: Path, command: str) -> str:
    today = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [f"part {name}: {command} ({today})", f"tests: {' '.join(part['tests'])}", ""]
    survivors: list[str] = []
    for module in part["modules"]:
        found = verdicts(work, module)
        total = sum(len(v) for v in found.values())
        killed = len(found["killed"])
        score = 100.0 * killed / total if total else 100.0
        lines.append(
            f"{module}: {killed}/{total} killed ({score:.1f}%), {len(found['survived'])} "
            f"survived, {len(found['no tests'])} without tests, {len(found['other'])} other"
        )
        survivors += [*found["survived"], *found["no tests"], *found["other"]]
    lines += ["", "not killed:", *(f"  {s}" for s in survivors)]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m mutation", description=__doc__)
    parser.add_argument("--parts", default="", help="comma-separated part names (default: all)")
    parser.add_argument("--max-children", type=int, default=2, help="mutants run at once")
    parser.add_argument("--keep", action="store_true", help="reuse the part's mutmut cache")
    args = parser.parse_args()
    shared = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["mutmut"]
    parts: dict[str, Any] = shared["parts"]
    wanted = [p for p in args.parts.split(",") if p] or list(parts)
    unknown = [p for p in wanted if p not in parts]
    if unknown:
        sys.exit(f"unknown part(s) {unknown}: choose from {sorted(parts)} (pyproject.toml)")
    mutmut = str(Path(sys.executable).with_name("mutmut"))
    RESULTS.mkdir(parents=True, exist_ok=True)
    failed = []
    for name in wanted:
        work = prepare(name, shared, parts[name], args.keep)
        print(f"== part {name}: {', '.join(parts[name]['modules'])}", flush=True)
        env = {**os.environ, "PYTHONPATH": ""}  # the mutated copy, never the original
        run = [mutmut, "run", "--max-children", str(args.max_children)]
        with contextlib.ExitStack() as stack:
            if parts[name].get("private_postgres"):
                # Mutants of the Postgres backend leave connections open (a lost commit, a
                # hung wake-up) until their time runs out: on the machine's own server they
                # would use up max_connections for everybody else.
                url, _ = stack.enter_context(private_postgres())
                env["WAYMARK_TEST_PG_URL"] = url
            done = subprocess.run(run, cwd=work, env=env, check=False)
        if done.returncode != 0:
            failed.append(name)
            continue
        text = report(name, parts[name], work, f"make mutate MODULES={name}")
        (RESULTS / f"{name}.txt").write_text(text)
        print(text, flush=True)
    if failed:
        sys.exit(f"mutmut failed for part(s) {failed}; its output is above")


if __name__ == "__main__":
    main()
