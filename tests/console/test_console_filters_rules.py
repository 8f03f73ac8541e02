"""The workflow list's filters (console/filters.py) to the letter: each refusal's whole
message, the limits at their boundaries, the query string a filter links with, the prefix
range, and keyset pages forwards and back over rows whose ID order is not their age order."""

from __future__ import annotations

import pytest
from django.http import QueryDict

import tests.console.console_site as site
from console import filters
from console.models import Workflow
from engine import Engine

DATE_HINT = "use ISO 8601, e.g. 2026-11-25T14:00 or 2026-11-25T14:00:00+00:00"


def refusal(query: str) -> str:
    with pytest.raises(filters.BadFilterError) as info:
        filters.parse(QueryDict(query))
    return str(info.value)


def test_attribute_filters_are_read_after_other_parameters_and_sorted() -> None:
    f = filters.parse(QueryDict("status=SUCCESS&attr.region=eu&name=shop&attr.customer=42"))
    assert f.attributes == (("customer", "42"), ("region", "eu"))
    assert f.statuses == ("SUCCESS",) and f.name == "shop"
    assert f.query_string() == "status=SUCCESS&name=shop&attr.customer=42&attr.region=eu"


def test_attribute_filter_refusals_say_what_and_how() -> None:
    assert refusal("attr.customer=1&attr.customer=2") == (
        "'attr.customer' is given 2 times; give it once"
    )
    eleven = "&".join(f"attr.k{i}=v" for i in range(11))
    assert refusal(eleven) == "at most 10 attr.<key> filters at once"
    ten = "&".join(f"attr.k{i}=v" for i in range(10))
    assert len(filters.parse(QueryDict(ten)).attributes) == 10
    message = refusal("attr.=42")
    assert message.startswith("'attr.' is not an attribute filter (")
    assert message.endswith("); use attr.<key>=<value>, e.g. attr.customer=42")


def test_window_date_and_internal_refusals_quote_the_first_40_characters() -> None:
    long = "z" * 60
    assert refusal(f"since={long}") == (
        f"since={'z' * 40!r} is not a window; use one of 15m, 1h, 24h, 7d, 30d"
    )
    assert refusal(f"internal={long}") == f"internal={'z' * 40!r} must be 1 or absent"
    assert refusal("before=soon") == f"before='soon' is not a date-time; {DATE_HINT}"
    assert refusal("after=soon") == f"after='soon' is not a date-time; {DATE_HINT}"
    assert refusal("after=2026-01-02&before=2026-01-01") == "after must be earlier than before"


def test_id_and_parent_prefixes_may_be_as_long_as_an_id() -> None:
    long_id = "w" * 5_000  # far past the 500 characters of other text filters
    f = filters.parse(QueryDict(f"id={long_id}&parent={long_id}"))
    assert (f.id_prefix, f.parent) == (long_id, long_id)
    assert "longer than 500 characters" in refusal(f"name={long_id}")


def test_internal_round_trips_through_the_query_string() -> None:
    f = filters.parse(QueryDict("internal=1&since=1h"))
    assert f.internal and f.active
    assert f.query_string() == "since=1h&internal=1"
    assert not filters.parse(QueryDict("")).active


def test_a_cursor_may_carry_any_id_up_to_the_limit() -> None:
    longest = "1~" + "x" * (filters.ID_LIMIT + 14)  # 16 characters more than an ID
    assert filters.parse_cursor(longest) == (1, "x" * (filters.ID_LIMIT + 14))
    with pytest.raises(filters.BadFilterError) as info:
        filters.parse_cursor(longest + "x", "back")
    assert str(info.value) == (
        f"back={longest[:40]!r} is not a page cursor; follow the list's page links"
    )
    assert filters.parse_cursor("17~a~b") == (17, "a~b")
    assert filters.parse_cursor("") is None


def test_the_prefix_range_bumps_the_last_character_only() -> None:
    assert filters.prefix_range("name", "shop") == {
        "name__gte": "shop",
        "name__lt": "shoq",
        "name__startswith": "shop",
    }


@pytest.fixture
def aged(make_engine, db):
    """130 workflows whose IDs sort the opposite way to their age: a page ordered by ID
    alone, or a cursor that ignores the time, shows the wrong rows."""
    engine: Engine = make_engine("filters-app")

    @engine.workflow(name="noop")
    def noop(ctx, x):
        return x

    engine.launch()
    for i in range(130):
        engine.start_workflow(noop, i, workflow_id=f"age-{i:03d}").get_result(timeout=20)
    # age-000 is the newest; equal times for a run in the middle (the tie-break by ID).
    db.raw(
        "UPDATE workflow_status "
        "SET created_at = 1700000000000 - 10 * CAST(SUBSTR(workflow_uuid, 5) AS INTEGER)"
    )
    db.raw(
        "UPDATE workflow_status SET created_at = 1699999999000 "
        "WHERE workflow_uuid BETWEEN 'age-060' AND 'age-069'"
    )
    site.point_engine_database(db)
    yield [row.workflow_uuid for row in Workflow.objects.order_by("-created_at", "-workflow_uuid")]


def key(row: Workflow) -> str:
    return f"{row.created_at}~{row.workflow_uuid}"


def ids(page: filters.Page) -> list[str]:
    return [row.workflow_uuid for row in page.rows]


def test_pages_forwards_and_back_by_keyset(aged) -> None:
    newest_first = aged
    assert newest_first[0] == "age-000" and len(newest_first) == 130
    qs = Workflow.objects.all()
    first = filters.page(qs, None)
    assert ids(first) == newest_first[:50]
    assert first.next_cursor == key(first.rows[-1]) and first.prev_cursor == ""
    second = filters.page(qs, filters.parse_cursor(first.next_cursor))
    assert ids(second) == newest_first[50:100]
    assert second.prev_cursor == key(second.rows[0])
    third = filters.page(qs, filters.parse_cursor(second.next_cursor))
    assert ids(third) == newest_first[100:] and third.next_cursor == ""
    # Back from the third page: the second again, with both its links.
    again = filters.page(qs, None, filters.parse_cursor(third.prev_cursor))
    assert ids(again) == ids(second)
    assert (again.next_cursor, again.prev_cursor) == (key(second.rows[-1]), key(second.rows[0]))
    # Back from the second page: the first page, full, with no link further back.
    start = filters.page(qs, None, filters.parse_cursor(second.prev_cursor))
    assert ids(start) == newest_first[:50] and start.prev_cursor == ""
    # Back from one row past the first page's start: still the first page, full.
    near = filters.page(qs, None, filters.parse_cursor(key(first.rows[1])))
    assert ids(near) == newest_first[:50]
