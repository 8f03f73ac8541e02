"""The engine's exceptions: every one is an ``EngineError``."""

from __future__ import annotations


class EngineError(Exception):
    """Base class of every error the engine raises on purpose."""


class WorkflowFailedError(EngineError):
    """The awaited workflow ended in ERROR; carries the recorded error's name and message."""

    def __init__(self, workflow_id: str, error_name: str, error_message: str) -> None:
        super().__init__(f"workflow {workflow_id!r} failed: {error_name}: {error_message}")
        self.workflow_id = workflow_id
        self.error_name = error_name
        self.error_message = error_message


class WorkflowCancelledError(EngineError):
    """The awaited workflow was cancelled (by an operator or by its timeout)."""

    def __init__(self, workflow_id: str, message: str | None = None) -> None:
        super().__init__(message or f"workflow {workflow_id!r} was cancelled")
        self.workflow_id = workflow_id


class StepError(EngineError):
    """A recorded step error replayed when its exception class cannot be rebuilt."""

    def __init__(self, error_name: str, error_message: str) -> None:
        super().__init__(f"{error_name}: {error_message}")
        self.error_name = error_name
        self.error_message = error_message


class MaxRecoveryAttemptsExceededError(EngineError):
    """The workflow was recovered more than its ``max_recovery_attempts`` and was set aside."""

    def __init__(self, workflow_id: str, attempts: int | None = None) -> None:
        detail = f" after {attempts} recoveries" if attempts is not None else ""
        super().__init__(
            f"workflow {workflow_id!r} exceeded its maximum recovery attempts{detail}; "
            "inspect it, then resume it with resume_workflow()"
        )
        self.workflow_id = workflow_id


class WorkflowNotFoundError(EngineError):
    def __init__(self, workflow_id: str) -> None:
        super().__init__(f"no workflow with ID {workflow_id!r}")
        self.workflow_id = workflow_id


class ConflictingWorkflowError(EngineError):
    """A workflow ID was reused for a different workflow function."""

    def __init__(self, workflow_id: str, existing_name: str, requested_name: str) -> None:
        super().__init__(
            f"workflow ID {workflow_id!r} already belongs to workflow {existing_name!r}, "
            f"not {requested_name!r}; use another workflow ID"
        )
        self.workflow_id = workflow_id
        self.existing_name = existing_name
        self.requested_name = requested_name


class NonDeterministicWorkflowError(EngineError):
    """A replay reached a different step than the one recorded at that position."""

    def __init__(self, workflow_id: str, step_id: int, recorded: str, reached: str) -> None:
        super().__init__(
            f"workflow {workflow_id!r} is not deterministic: step {step_id} was recorded as "
            f"{recorded!r} but the replay reached {reached!r}; workflow code must take the same "
            "steps in the same order on every execution (fork it to run new code)"
        )
        self.workflow_id = workflow_id
        self.step_id = step_id
        self.recorded = recorded
        self.reached = reached


class SerializationError(EngineError, TypeError):
    """A value that must be stored is not JSON-serializable (or a stored value is corrupt)."""


class QueueDeduplicatedError(EngineError):
    def __init__(self, workflow_id: str, queue_name: str, deduplication_id: str) -> None:
        super().__init__(
            f"workflow {workflow_id!r} was not enqueued: deduplication ID {deduplication_id!r} "
            f"is held by another workflow on queue {queue_name!r} that is still enqueued or running"
        )
        self.workflow_id = workflow_id
        self.queue_name = queue_name
        self.deduplication_id = deduplication_id
