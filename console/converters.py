"""URL converters for the console's paths.

Workflow IDs are free text: ``tenant/acme/order 17``, ``..``, ``%``, ``bulk``, unicode. In a
path the ID is one percent-encoded segment (dots too, so browsers never resolve ``..``), so it
never splits into segments nor collides with a route word; Django percent-encodes the ``%``
again when reversing, and decodes once before matching, so ``to_python`` decodes the second
layer.
"""

from __future__ import annotations

from urllib.parse import quote, unquote

MAX_STEP = 2**31 - 1  # step numbers are 32-bit integers in the system tables


class WorkflowIdConverter:
    regex = "[^/]+"

    def to_python(self, value: str) -> str:
        workflow_id = unquote(value)
        if "\x00" in workflow_id:
            raise ValueError("a workflow ID never contains NUL")  # no match: a 404
        return workflow_id

    def to_url(self, value: str) -> str:
        return quote(value, safe="").replace(".", "%2E")


class StepNumberConverter:
    regex = "[0-9]{1,10}"

    def to_python(self, value: str) -> int:
        number = int(value)
        if number > MAX_STEP:
            raise ValueError("no step has a number this large")
        return number

    def to_url(self, value: int) -> str:
        return str(value)
