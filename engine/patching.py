"""Patching: new code for a workflow without stranding the ones started under the old code.

``ctx.patch(name)`` decides once per workflow, at the point where the code changed, which
branch it takes, and records the decision as a step (``operations.patch_step(name)``):

- a workflow reaching this point for the first time under the new code (nothing recorded
  here) records the marker and takes the new branch (True);
- a replay that finds the marker here takes the new branch again (True);
- a replay that finds another step here had passed this point under the old code: it takes
  the old branch (False), records nothing and takes no step ID, so its later steps keep the IDs
  the old code gave them.

``ctx.deprecate_patch(name)`` is for when every workflow that took the old branch has ended:
the old branch is deleted, but workflows that recorded the marker still replay it (consumed
once, so their later step IDs still match); new workflows record nothing.
"""

from __future__ import annotations

from engine import clock, operations
from engine.checkpoints import Checkpoints


def check_name(name: object) -> str:
    if not isinstance(name, str) or not name:
        raise TypeError(f"a patch name must be a non-empty string, got {name!r}")
    return name


def patch(steps: Checkpoints, name: str) -> bool:
    marker = operations.patch_step(check_name(name))
    found = steps.peek()
    if found is not None and found.name != marker:
        return False  # this workflow passed here under the old code
    step_id, row = steps.take(marker)
    if row is None:
        steps.record_value(step_id, marker, True, clock.now_ms())
    return True


def deprecate_patch(steps: Checkpoints, name: str) -> bool:
    marker = operations.patch_step(check_name(name))
    found = steps.peek()
    if found is not None and found.name == marker:
        steps.take(marker)  # recorded by the patched code: consumed, so later IDs match
    return True
