"""manage.py workflows list|get|steps|cancel|resume|fork: the console's reads and actions from a
shell, for scripts and incidents. Actions are audited with the OS user as the actor."""

from __future__ import annotations

import dataclasses
import datetime as dt
import getpass
import json
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
    help = "List, inspect, cancel, resume and fork workflows."

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="verb", required=True)
        listing = sub.add_parser("list", help="recent workflows")
        listing.add_argument("--status", action="append")
        listing.add_argument("--name")
        listing.add_argument("--limit", type=int, default=20)
        for verb in ("get", "steps", "cancel", "resume", "fork"):
            p = sub.add_parser(verb)
            p.add_argument("workflow_id")
            if verb in ("cancel", "resume", "fork"):
                p.add_argument("--reason", default="")
            if verb == "fork":
                p.add_argument("--step", type=int, required=True)
                p.add_argument("--version", default=None)
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

    def _out(self, value: Any, as_json: bool, line: Any) -> None:
        if as_json or line is None:
            self.stdout.write(json.dumps(value, indent=None if as_json else 2, default=str))
        else:
            for item in value:
                self.stdout.write(line(item))
