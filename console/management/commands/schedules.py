"""manage.py schedules list|create|pause|resume|delete|trigger|backfill: managed schedules from a
shell, for scripts and incidents. Actions are audited like the console's (console/schedule_ops.py),
with the OS user as the actor."""

from __future__ import annotations

import datetime as dt
import getpass
import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from console import actions, schedule_ops
from engine import scheduler


def _when(text: str, zone: dt.tzinfo, what: str) -> dt.datetime:
    try:
        value = dt.datetime.fromisoformat(text)
    except ValueError:
        raise CommandError(
            f"--{what} {text!r} is not a date and time; give e.g. 2026-03-01T00:00 (read in "
            "--tz, default UTC) or 2026-03-01T00:00+01:00"
        ) from None
    return value if value.tzinfo is not None else value.replace(tzinfo=zone)


class Command(BaseCommand):
    help = "List, create, pause, resume, delete, trigger and backfill managed schedules."

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="verb", required=True)
        sub.add_parser("list", help="every managed schedule")
        create = sub.add_parser("create", help="create a schedule, or update it in place")
        create.add_argument("name")
        create.add_argument("workflow", help="the registered workflow's name")
        create.add_argument(
            "cron", help=f"the cron expression: {scheduler.CRON_FORMAT}; quote it in the shell"
        )
        create.add_argument("--timezone", default="UTC", help="an IANA name (default UTC)")
        create.add_argument("--queue", default=None, help="start each run on this queue")
        for verb in ("pause", "resume", "delete", "trigger", "backfill"):
            p = sub.add_parser(verb)
            p.add_argument("name")
        backfill = sub.choices["backfill"]
        backfill.add_argument("--start", required=True, help="first tick included (ISO time)")
        backfill.add_argument("--end", required=True, help="ticks before it (ISO time)")
        backfill.add_argument("--tz", default="UTC", help="zone of a time given without offset")
        for p in sub.choices.values():
            if p is not sub.choices["list"]:
                p.add_argument("--reason", default="")
            p.add_argument("--json", action="store_true", help="machine-readable output")

    def handle(self, *args: Any, **options: Any) -> None:
        verb, as_json = options["verb"], options["json"]
        if verb == "list":
            found = [
                {
                    "name": s.name,
                    "workflow_name": s.workflow_name,
                    "cron": s.cron,
                    "timezone": s.timezone,
                    "queue": s.queue,
                    "paused": s.paused,
                    "next_fire_at": s.next_fire_at.isoformat() if s.next_fire_at else None,
                    "last_fire_at": s.last_fire_at.isoformat() if s.last_fire_at else None,
                }
                for s in actions.client().list_schedules()
            ]
            if as_json:
                self.stdout.write(json.dumps(found))
            for s in [] if as_json else found:
                state = "PAUSED" if s["paused"] else f"next {s['next_fire_at']}"
                self.stdout.write(
                    f"{s['name']}  {s['workflow_name']}  {s['cron']!r} {s['timezone']}  {state}"
                )
            return
        window = None
        if verb == "backfill":
            try:
                zone = scheduler.zone(options["tz"], options["name"])
            except ValueError as exc:
                raise CommandError(str(exc)) from None
            window = (
                _when(options["start"], zone, "start"),
                _when(options["end"], zone, "end"),
            )
        spec = None
        if verb == "create":
            spec = {
                "workflow": options["workflow"],
                "cron": options["cron"],
                "timezone": options["timezone"],
                "queue": options["queue"] or "",
            }
        actor = actions.Actor(name=getpass.getuser(), source="cli")
        outcome = schedule_ops.act(actor, verb, options["name"], options["reason"], window, spec)
        result = {
            "ok": outcome.ok,
            "message": outcome.message,
            "new_workflow_id": outcome.new_workflow_id,
        }
        self.stdout.write(json.dumps(result) if as_json else outcome.message)
        if not outcome.ok:
            raise CommandError(outcome.message)
