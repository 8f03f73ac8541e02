"""manage.py workflows list|get|steps|cancel|resume|fork|delete|export|import|gc: the console's
reads and actions from a shell, for scripts and incidents. Actions (exports too) are audited
with the OS user as the actor."""

from __future__ import annotations

import dataclasses
import datetime as dt
import getpass
import json
import sys
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from console import actions


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {k: _plain(v) for k, v in dataclasses.asdict(value).items()}
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, dt.datetime):
        return value.isoformat()
    return value


class Command(BaseCommand):
    help = "List, inspect, cancel, resume, fork, delete, export and import workflows; gc."

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="verb", required=True)
        listing = sub.add_parser("list", help="recent workflows")
        listing.add_argument("--status", action="append")
        listing.add_argument("--name")
        listing.add_argument("--limit", type=int, default=20)
        for verb in ("get", "steps", "cancel", "resume", "fork", "delete", "export"):
            p = sub.add_parser(verb)
            p.add_argument("workflow_id")
            if verb in ("cancel", "resume", "fork", "delete"):
                p.add_argument("--reason", default="")
            if verb in ("delete", "export"):
                p.add_argument("--children", action="store_true", help="with its descendants")
            if verb == "export":
                p.add_argument("--output", "-o", default="-", help="file (default: stdout)")
            if verb == "fork":
                p.add_argument("--step", type=int, required=True)
                p.add_argument("--version", default=None)
        imp = sub.add_parser("import", help="import a workflow exported with `export`")
        imp.add_argument("file", help="the export's JSON file (- for stdin)")
        imp.add_argument("--reason", default="")
        gc = sub.add_parser("gc", help="delete finished workflows completed long enough ago")
        gc.add_argument(
            "--older-than", type=float, required=True, help="seconds since they completed"
        )
        gc.add_argument("--keep-last", type=int, default=None, help="keep the newest N")
        gc.add_argument("--reason", default="")
        for p in sub.choices.values():
            p.add_argument("--json", action="store_true", help="machine-readable output")

    def handle(self, *args: Any, **options: Any) -> None:
        verb, as_json = options["verb"], options["json"]
        client = actions.client()
        if verb == "list":
            found = client.list_workflows(
                status=options["status"], name=options["name"], limit=options["limit"]
            )
            self._out(
                [_plain(w) for w in found],
                as_json,
                lambda w: f"{w['status']:<10} {w['workflow_id']}  {w['name']}  {w['created_at']}",
            )
            return
        if verb in ("import", "gc", "export") or (verb == "delete" and options["children"]):
            self._lifecycle(verb, options, as_json)
            return
        workflow_id = options["workflow_id"]
        if verb == "get":
            status = client.get_workflow_status(workflow_id)
            if status is None:
                raise CommandError(f"no workflow with ID {workflow_id!r}")
            self._out(_plain(status), as_json, None)
            return
        if verb == "steps":
            self._out(
                [_plain(s) for s in client.list_steps(workflow_id)],
                as_json,
                lambda s: f"{s['step_id']:>4} {s['name']}  {s['error'] or json.dumps(s['output'])}",
            )
            return
        actor = actions.Actor(name=getpass.getuser(), source="cli")
        outcome = actions.act(
            actor,
            verb,
            workflow_id,
            options["reason"],
            step=options.get("step"),
            version=options.get("version"),
        )
        result = {
            "ok": outcome.ok,
            "message": outcome.message,
            "new_workflow_id": outcome.new_workflow_id,
        }
        self._out(result, as_json, None)
        if not outcome.ok:
            raise CommandError(outcome.message)

    def _lifecycle(self, verb: str, options: dict[str, Any], as_json: bool) -> None:
        """export, import, gc and delete --children: audited like the other actions."""
        actor = actions.Actor(name=getpass.getuser(), source="cli")
        if verb == "export":
            outcome, data = actions.export(
                actor, options["workflow_id"], children=options["children"]
            )
            if not outcome.ok:
                raise CommandError(outcome.message)
            text = json.dumps(data)
            if options["output"] == "-":
                self.stdout.write(text)
            else:
                Path(options["output"]).write_text(text)
            return
        if verb == "import":
            text = sys.stdin.read() if options["file"] == "-" else Path(options["file"]).read_text()
            outcome = actions.import_workflow(actor, json.loads(text), options["reason"])
        elif verb == "gc":
            outcome = actions.garbage_collect(
                actor, options["older_than"], options["keep_last"], options["reason"]
            )
        else:
            outcome = actions.delete_tree(actor, options["workflow_id"], options["reason"])
        self._out({"ok": outcome.ok, "message": outcome.message}, as_json, None)
        if not outcome.ok:
            raise CommandError(outcome.message)

    def _out(self, value: Any, as_json: bool, line: Any) -> None:
        if as_json or line is None:
            self.stdout.write(json.dumps(value, indent=None if as_json else 2, default=str))
        else:
            for item in value:
                self.stdout.write(line(item))
