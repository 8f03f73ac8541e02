"""The console shows a debounced workflow as one: its debounce key and when it starts, in the
detail page's header and in the list's "now" column (key escaped). Both backends."""

from __future__ import annotations

import html
import re

import pytest
from django.db import connections

import tests.console.console_site as site
from tests.console.test_console_content import text_of
from tests.console.test_console_incident import detail, now_line
from tests.console.test_console_operate import user
from tests.support import CLOCK

KEY = "user <b>7</b>"


@pytest.fixture
def debounced(make_engine, db):
    engine = make_engine("debounce-console", application_version="v1")

    @engine.workflow(name="notify")
    def notify(ctx, text):
        return text

    engine.launch()
    debouncer = engine.debouncer(notify, period=3600)
    handle = debouncer.debounce(KEY, "first")
    debouncer.debounce(KEY, "second")
    site.point_engine_database(db)
    yield handle.workflow_id
    connections["waymark"].close()


def test_a_debounced_workflow_shows_its_key_and_start(debounced) -> None:
    workflow_id = debounced
    line = html.unescape(now_line(workflow_id))
    assert re.search(
        rf"debounced \(key “user <b>7</b>”\): starts at {CLOCK} \(in [\d.]+ (min|h)\) "
        r"with the latest input",
        line,
    ), line
    page = user("viewer").get(detail(workflow_id)).content.decode()
    assert "user &lt;b&gt;7&lt;/b&gt;" in page and KEY not in page  # escaped, never markup
    listing = user("viewer").get("/workflows/")
    assert "debounced “user <b>7</b>” until" in html.unescape(text_of(listing))
    assert KEY not in listing.content.decode()
