"""Issue 15: managed schedules in the database, seen by every worker (both backends)."""

from __future__ import annotations

import datetime as dt
import zoneinfo
from collections.abc import Callable

import pytest

from engine import Client, Engine, EngineError, ScheduleInfo
from engine import scheduler as cron
from tests.support import wait_until

UTC = dt.UTC
NEW_YORK = zoneinfo.ZoneInfo("America/New_York")


def at(*parts: int) -> dt.datetime:
    return dt.datetime(*parts, tzinfo=UTC)  # type: ignore[misc]


def ids(engine: Engine | Client, prefix: str) -> list[str]:
    return sorted(
        w.workflow_id for w in engine.list_workflows(workflow_id_prefix=prefix, limit=1000)
    )


def schedule(engine: Engine | Client, name: str) -> ScheduleInfo:
    return next(s for s in engine.list_schedules() if s.name == name)


def register(engine: Engine) -> None:
    @engine.workflow(name="report")
    def report(ctx, tick):
        assert isinstance(tick, dt.datetime) and tick.tzinfo is not None
        return tick.isoformat()

    @engine.workflow(name="canary")
    def canary(ctx, tick):
        return tick.isoformat()

    @engine.workflow(name="no_input")
    def no_input(ctx):
        return None


@pytest.fixture
def app(make_engine: Callable[..., Engine]) -> Engine:
    engine = make_engine()
    register(engine)
    engine.launch()
    return engine


@pytest.fixture
def client(db) -> Client:
    made = Client(db.url, schema=db.schema)
    yield made
    made.close()


# -- create, list, fire --------------------------------------------------------------------------


def test_create_lists_the_schedule_on_the_engine_and_a_client(app: Engine, client: Client) -> None:
    before = dt.datetime.now(UTC)
    app.create_schedule("nightly", "report", "0 2 * * *", timezone="Europe/Paris")
    expected = next(cron.ticks("0 2 * * *", before, zoneinfo.ZoneInfo("Europe/Paris")))
    for reader in (app, client):
        found = schedule(reader, "nightly")
        assert found == ScheduleInfo(
            name="nightly",
            workflow_name="report",
            cron="0 2 * * *",
            timezone="Europe/Paris",
            paused=False,
            next_fire_at=expected,
            last_fire_at=None,
            queue=None,
        )
    # 02:00 in Paris is 01:00 or 00:00 UTC (winter, summer): the zone is applied.
    assert expected.astimezone(zoneinfo.ZoneInfo("Europe/Paris")).hour == 2
    # Created again: updated in place, still one schedule.
    app.create_schedule("nightly", "report", "0 3 * * *", timezone="Europe/Paris")
    assert [s.cron for s in client.list_schedules() if s.name == "nightly"] == ["0 3 * * *"]


def test_a_schedule_fires_each_tick_with_the_tick_as_input(app: Engine) -> None:
    app.create_schedule("every-second", "report", "* * * * * *")
    wait_until(lambda: len(ids(app, "every-second@")) >= 3, 60, "three ticks")
    for workflow_id in ids(app, "every-second@")[:3]:
        result = app.retrieve_workflow(workflow_id).get_result(timeout=30)
        # The input is the tick (a datetime); its ID is name@<the same tick>.
        assert workflow_id == f"every-second@{result}"
        assert dt.datetime.fromisoformat(result).microsecond == 0
    assert schedule(app, "every-second").last_fire_at is not None


def test_ticks_run_exactly_once_with_two_engines(
    make_engine: Callable[..., Engine], client: Client
) -> None:
    engines = []
    for executor in ("one", "two"):
        engine = make_engine(executor_id=executor)
        register(engine)
        engine.launch()
        engines.append(engine)
    engines[0].create_schedule("shared", "report", "* * * * * *")
    wait_until(lambda: len(ids(client, "shared@")) >= 5, 60, "five ticks")
    client.pause_schedule("shared")
    ticks = [dt.datetime.fromisoformat(i.removeprefix("shared@")) for i in ids(client, "shared@")]
    # One run per tick (the ID is the tick) and no tick between the first and last missed.
    assert len(ticks) == len(set(ticks))
    assert (ticks[-1] - ticks[0]).total_seconds() == len(ticks) - 1


# -- pause, resume, delete ------------------------------------------------------------------------


def test_a_pause_from_a_client_holds_on_every_engine_until_resumed(
    make_engine: Callable[..., Engine], client: Client
) -> None:
    engines = []
    for executor in ("one", "two"):
        engine = make_engine(executor_id=executor)
        register(engine)
        engine.launch()
        engines.append(engine)
    engines[0].create_schedule("paused-one", "report", "* * * * * *")
    wait_until(lambda: ids(client, "paused-one@"), 60, "a first tick")
    client.pause_schedule("paused-one")
    assert schedule(engines[1], "paused-one").paused
    assert schedule(engines[1], "paused-one").next_fire_at is None

    # A canary made after the pause: once both engines' schedulers have fired it several
    # times they have re-read the schedules (a pass under way at the pause may still finish).
    engines[1].create_schedule("canary", "canary", "* * * * * *")
    wait_until(lambda: len(ids(client, "canary@")) >= 2, 60, "canary ticks")
    held = ids(client, "paused-one@")
    count = len(ids(client, "canary@"))
    wait_until(lambda: len(ids(client, "canary@")) >= count + 3, 60, "three more canary ticks")
    assert ids(client, "paused-one@") == held

    engines[1].resume_schedule("paused-one")
    resumed = schedule(client, "paused-one")
    assert not resumed.paused and resumed.next_fire_at is not None
    # Ticks passed while paused are not fired: the next one is after the resume.
    assert resumed.next_fire_at > dt.datetime.now(UTC) - dt.timedelta(seconds=1)
    wait_until(lambda: len(ids(client, "paused-one@")) > len(held), 60, "a tick after resume")


def test_delete_stops_the_ticks_and_keeps_the_runs(app: Engine, client: Client) -> None:
    app.create_schedule("doomed", "report", "* * * * * *")
    wait_until(lambda: ids(app, "doomed@"), 60, "a tick")
    client.delete_schedule("doomed")
    assert [s.name for s in app.list_schedules()] == []
    app.create_schedule("canary", "canary", "* * * * * *")
    wait_until(lambda: len(ids(app, "canary@")) >= 2, 60, "canary ticks")
    kept = ids(app, "doomed@")
    count = len(ids(app, "canary@"))
    wait_until(lambda: len(ids(app, "canary@")) >= count + 2, 60, "more canary ticks")
    assert ids(app, "doomed@") == kept and kept


def test_a_tick_missed_long_ago_is_skipped_not_fired_late(app: Engine, db) -> None:
    app.create_schedule("late", "report", "0 0 * * *")
    app.pause_schedule("late")
    long_ago = int(at(2026, 1, 1).timestamp() * 1000)
    db.raw(
        "UPDATE schedules SET next_fire_at = %s, paused = %s WHERE name = %s",
        (long_ago, False if db.backend == "postgres" else 0, "late"),
    )
    app.create_schedule("canary", "canary", "* * * * * *")  # wakes the scheduler
    wait_until(lambda: schedule(app, "late").next_fire_at > dt.datetime.now(UTC), 60, "moved on")
    assert ids(app, "late@") == []  # backfill_schedule replays such ticks on request
    assert schedule(app, "late").last_fire_at is None  # nothing fired


# -- trigger and backfill ------------------------------------------------------------------------


def test_trigger_runs_now_with_the_trigger_time_even_while_paused(
    app: Engine, client: Client
) -> None:
    app.create_schedule("yearly", "report", "0 0 1 1 *")
    app.pause_schedule("yearly")
    before = dt.datetime.now(UTC)
    handle = app.trigger_schedule("yearly")
    fired = dt.datetime.fromisoformat(handle.get_result(timeout=30))
    assert before <= fired <= dt.datetime.now(UTC)
    assert handle.workflow_id.startswith("yearly@trigger-")
    assert schedule(app, "yearly").last_fire_at == fired.replace(
        microsecond=fired.microsecond // 1000 * 1000
    )
    # From a client: enqueued for any worker (this engine serves the internal queue).
    other = client.trigger_schedule("yearly")
    assert other.workflow_id != handle.workflow_id
    assert dt.datetime.fromisoformat(other.get_result(timeout=30)) >= fired


def test_backfill_covers_start_to_end_exclusive_and_is_idempotent(
    app: Engine, client: Client
) -> None:
    app.create_schedule("hourly", "report", "0 * * * *")
    handles = app.backfill_schedule("hourly", at(2026, 3, 1, 10), at(2026, 3, 1, 13))
    assert [h.workflow_id for h in handles] == [
        f"hourly@{at(2026, 3, 1, h).isoformat()}" for h in (10, 11, 12)
    ]
    assert [h.get_result(timeout=30) for h in handles] == [
        at(2026, 3, 1, h).isoformat() for h in (10, 11, 12)
    ]
    created = [app.get_workflow_status(h.workflow_id).created_at for h in handles]
    # Again, and from a client over a wider range: the ticks that ran are not run again.
    again = client.backfill_schedule("hourly", at(2026, 3, 1, 10, 30), at(2026, 3, 1, 14))
    assert [h.workflow_id for h in again] == [
        f"hourly@{at(2026, 3, 1, h).isoformat()}" for h in (11, 12, 13)
    ]
    assert [app.get_workflow_status(h.workflow_id).created_at for h in handles] == created
    assert again[-1].get_result(timeout=30) == at(2026, 3, 1, 13).isoformat()
    assert len(ids(app, "hourly@")) == 4


def test_backfill_reads_the_cron_in_the_schedules_time_zone(app: Engine) -> None:
    app.create_schedule("ny", "report", "30 2 * * *", timezone="America/New_York")
    handles = app.backfill_schedule("ny", at(2026, 3, 7), at(2026, 3, 10))
    # 02:30 EST, then 02:30 on the day the clock skips it (03:30 EDT), then 02:30 EDT.
    assert [h.workflow_id.removeprefix("ny@") for h in handles] == [
        "2026-03-07T07:30:00+00:00",
        "2026-03-08T07:30:00+00:00",
        "2026-03-09T06:30:00+00:00",
    ]
    assert [h.get_result(timeout=30) for h in handles] == [
        dt.datetime.fromisoformat(h.workflow_id.removeprefix("ny@")).isoformat() for h in handles
    ]


# -- DST --------------------------------------------------------------------------------------


def utc_ticks(expr: str, after: dt.datetime, count: int, tz: dt.tzinfo) -> list[str]:
    found = cron.ticks(expr, after, tz)
    return [next(found).strftime("%m-%d %H:%M") for _ in range(count)]


def test_a_daily_tick_in_the_skipped_hour_fires_once_shifted_by_the_gap() -> None:
    # 2026-03-08: New York's clocks jump from 02:00 EST to 03:00 EDT.
    assert utc_ticks("30 2 * * *", at(2026, 3, 7), 3, NEW_YORK) == [
        "03-07 07:30",  # 02:30 EST
        "03-08 07:30",  # 02:30 does not exist: 03:30 EDT, once
        "03-09 06:30",  # 02:30 EDT
    ]


def test_a_daily_tick_in_the_repeated_hour_fires_once() -> None:
    # 2026-11-01: New York's clocks fall back from 02:00 EDT to 01:00 EST.
    assert utc_ticks("30 1 * * *", at(2026, 10, 31), 3, NEW_YORK) == [
        "10-31 05:30",  # 01:30 EDT
        "11-01 05:30",  # 01:30 happens twice: the first, only
        "11-02 06:30",  # 01:30 EST
    ]


def test_hourly_ticks_across_both_changes_fire_each_wall_hour_once() -> None:
    assert utc_ticks("0 * * * *", at(2026, 3, 8, 5, 30), 4, NEW_YORK) == [
        "03-08 06:00",  # 01:00 EST
        "03-08 07:00",  # 02:00 skipped, shifted to 03:00 EDT, which is the same instant: once
        "03-08 08:00",  # 04:00 EDT
        "03-08 09:00",
    ]
    assert utc_ticks("0 * * * *", at(2026, 11, 1, 3, 30), 4, NEW_YORK) == [
        "11-01 04:00",  # 00:00 EDT
        "11-01 05:00",  # 01:00 EDT; 01:00 EST (06:00 UTC) repeats it: not fired
        "11-01 07:00",  # 02:00 EST
        "11-01 08:00",
    ]
    # Starting inside the repeated hour (01:15 EST) does not go back to its first pass.
    assert utc_ticks("0 * * * *", at(2026, 11, 1, 6, 15), 1, NEW_YORK) == ["11-01 07:00"]
    # Starting after the jump still finds the skipped wall time's tick (03:10 EDT -> 03:30).
    assert utc_ticks("30 2 * * *", at(2026, 3, 8, 7, 10), 1, NEW_YORK) == ["03-08 07:30"]


def test_the_next_fire_time_listed_is_the_zones_next_tick(app: Engine) -> None:
    before = dt.datetime.now(UTC)
    app.create_schedule("tokyo", "report", "0 9 * * 1", timezone="Asia/Tokyo")
    found = schedule(app, "tokyo").next_fire_at
    assert found == next(cron.ticks("0 9 * * 1", before, zoneinfo.ZoneInfo("Asia/Tokyo")))
    local = found.astimezone(zoneinfo.ZoneInfo("Asia/Tokyo"))
    assert (local.weekday(), local.hour, local.minute) == (0, 9, 0)


# -- decorator schedules become managed ones -------------------------------------------------


def test_a_decorator_schedule_is_created_at_launch_and_keeps_an_operators_pause(
    make_engine: Callable[..., Engine], client: Client
) -> None:
    def app(cron_text: str) -> Engine:
        engine = make_engine()

        @engine.workflow(name="newyear", schedule=cron_text)
        def newyear(ctx, tick):
            return tick.isoformat()

        return engine

    first = app("0 0 1 1 *")
    assert client.list_schedules() == []  # created at launch(), not at registration
    first.launch()
    found = schedule(client, "newyear")
    assert (found.workflow_name, found.cron, found.timezone, found.paused) == (
        "newyear",
        "0 0 1 1 *",
        "UTC",
        False,
    )
    assert found.next_fire_at == next(cron.ticks("0 0 1 1 *", dt.datetime.now(UTC)))
    client.pause_schedule("newyear")
    first.shutdown()

    second = app("0 0 1 7 *")  # redeployed with another cron: updated, the pause holds
    second.launch()
    found = schedule(client, "newyear")
    assert (found.cron, found.paused) == ("0 0 1 7 *", True)
    assert len(client.list_schedules()) == 1
    # The old API works on it too.
    assert second.backfill("newyear", at(2026, 7, 1), at(2026, 7, 2))[0].get_result(30) == (
        at(2026, 7, 1).isoformat()
    )


# -- bad input: a clear error, nothing written -----------------------------------------------


def test_bad_input_raises_naming_the_value_and_writes_nothing(
    app: Engine, client: Client, db
) -> None:
    def refused(call: Callable[[], object], error: type[Exception], *words: str) -> None:
        with pytest.raises(error) as caught:
            call()
        for word in words:
            assert word in str(caught.value), (word, str(caught.value))

    for control in (app, client):
        refused(
            lambda c=control: c.create_schedule("s", "report", "every minute"),
            ValueError,
            "'every minute'",
            "5 fields",
            "6 with seconds first",
        )
        refused(
            lambda c=control: c.create_schedule("s", "report", "* * * *"), ValueError, "5 fields"
        )
        refused(
            lambda c=control: c.create_schedule("s", "report", "0 * * * *", timezone="Mars/Base"),
            ValueError,
            "'Mars/Base'",
            "IANA",
        )
        refused(
            lambda c=control: c.create_schedule("s", "missing", "0 * * * *"),
            EngineError,
            "'missing'",
        )
        refused(
            lambda c=control: c.create_schedule("a@b", "report", "0 * * * *"), ValueError, "'@'"
        )
        refused(lambda c=control: c.create_schedule("", "report", "0 * * * *"), ValueError, "name")
        for action in ("pause", "resume", "delete", "trigger"):
            refused(
                lambda c=control, a=action: getattr(c, f"{a}_schedule")("ghost"),
                EngineError,
                "unknown schedule 'ghost'",
                "create_schedule",
            )
    refused(
        lambda: app.create_schedule("s", "no_input", "0 * * * *"), EngineError, "'no_input'", "tick"
    )
    refused(
        lambda: app.create_schedule("s", "report", "0 * * * *", queue="nowhere"),
        EngineError,
        "'nowhere'",
    )
    assert app.list_schedules() == []
    assert db.raw("SELECT count(*) FROM schedules") == [(0,)]

    app.create_schedule("hourly", "report", "0 * * * *")
    for control in (app, client):
        refused(
            lambda c=control: c.backfill_schedule("hourly", at(2026, 1, 2), at(2026, 1, 1)),
            ValueError,
            "not after start",
        )
        refused(
            lambda c=control: c.backfill_schedule("hourly", at(2026, 1, 1), at(2026, 1, 1)),
            ValueError,
            "start < end",
        )
        refused(
            lambda c=control: c.backfill_schedule(
                "hourly", dt.datetime(2026, 1, 1), at(2026, 1, 2)
            ),
            ValueError,
            "timezone-aware",
        )
        refused(
            lambda c=control: c.backfill_schedule("hourly", at(2000, 1, 1), at(2026, 1, 1)),
            ValueError,
            "narrow the range",
        )
        refused(
            lambda c=control: c.backfill_schedule("ghost", at(2026, 1, 1), at(2026, 1, 2)),
            EngineError,
            "'ghost'",
        )
    assert ids(app, "hourly@") == []
    assert [s.name for s in client.list_schedules()] == ["hourly"]
