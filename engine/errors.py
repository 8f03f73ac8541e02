"""The engine's exceptions: every one is an ``EngineError``.

Each keeps its constructor arguments as ``args`` (and builds its message in ``__str__``), so a
recorded error (e.g. a child's WorkflowFailedError awaited by its parent) is rebuilt on replay
as the same class from its JSON arguments.
"""

from __future__ import annotations


class EngineError(Exception):
    """Base class of every error the engine raises on purpose."""


class WorkflowFailedError(EngineError):
    """The awaited workflow ended in ERROR; carries the recorded error's name and message."""

    def __init__(self, workflow_id: str, error_name: str, error_message: str) -> None:
        super().__init__(workflow_id, error_name, error_message)
        self.workflow_id = workflow_id
        self.error_name = error_name
        self.error_message = error_message

    def __str__(self) -> str:
        return f"workflow {self.workflow_id!r} failed: {self.error_name}: {self.error_message}"


class WorkflowCancelledError(EngineError):
    """The awaited workflow was cancelled (by an operator or by its timeout)."""

    def __init__(self, workflow_id: str) -> None:
        super().__init__(workflow_id)
        self.workflow_id = workflow_id

    def __str__(self) -> str:
        return f"workflow {self.workflow_id!r} was cancelled"


class StepError(EngineError):
    """A recorded step error replayed when its exception class cannot be rebuilt."""

    def __init__(self, error_name: str, error_message: str) -> None:
        super().__init__(error_name, error_message)
        self.error_name = error_name
        self.error_message = error_message

    def __str__(self) -> str:
        return f"{self.error_name}: {self.error_message}"


class MaxRecoveryAttemptsExceededError(EngineError):
    """The workflow was recovered more than its ``max_recovery_attempts`` and was set aside."""

    def __init__(self, workflow_id: str, attempts: int | None = None) -> None:
        super().__init__(workflow_id, attempts)
        self.workflow_id = workflow_id
        self.attempts = attempts

    @classmethod
    def set_aside(cls, workflow_id: str, claims: int) -> MaxRecoveryAttemptsExceededError:
        """The error of a workflow set aside when its row counted ``claims`` recovery claims:
        the last, refused claim is counted there too, so it had one recovery fewer."""
        return cls(workflow_id, claims - 1)

    def __str__(self) -> str:
        detail = f" after {self.attempts} recoveries" if self.attempts is not None else ""
        return (
            f"workflow {self.workflow_id!r} exceeded its maximum recovery attempts{detail}; "
            "inspect it, then resume it with resume_workflow()"
        )


class WorkflowNotFoundError(EngineError):
    def __init__(self, workflow_id: str) -> None:
        super().__init__(workflow_id)
        self.workflow_id = workflow_id

    def __str__(self) -> str:
        return f"no workflow with ID {self.workflow_id!r}"


class ConflictingWorkflowError(EngineError):
    """A workflow ID was reused for a different workflow function."""

    def __init__(self, workflow_id: str, existing_name: str, requested_name: str) -> None:
        super().__init__(workflow_id, existing_name, requested_name)
        self.workflow_id = workflow_id
        self.existing_name = existing_name
        self.requested_name = requested_name

    def __str__(self) -> str:
        return (
            f"workflow ID {self.workflow_id!r} already belongs to workflow "
            f"{self.existing_name!r}, not {self.requested_name!r}; use another workflow ID"
        )


class NonDeterministicWorkflowError(EngineError):
    """A replay reached a different step than the one recorded at that position."""

    def __init__(self, workflow_id: str, step_id: int, recorded: str, reached: str) -> None:
        super().__init__(workflow_id, step_id, recorded, reached)
        self.workflow_id = workflow_id
        self.step_id = step_id
        self.recorded = recorded
        self.reached = reached

    def __str__(self) -> str:
        return (
            f"workflow {self.workflow_id!r} is not deterministic: step {self.step_id} was "
            f"recorded as {self.recorded!r} but the replay reached {self.reached!r}; workflow "
            "code must take the same steps in the same order on every execution (fork it to "
            "run new code)"
        )


class SystemDatabaseUnavailableError(EngineError):
    """The system database stayed unreachable through every retry. Workflows caught by it stay
    PENDING (they are not failed for it) and are resumed once it is back."""


class SerializationError(EngineError, TypeError):
    """A value that must be stored is not JSON-serializable (or a stored value is corrupt)."""


class QueueDeduplicatedError(EngineError):
    def __init__(self, workflow_id: str, queue_name: str, deduplication_id: str) -> None:
        super().__init__(workflow_id, queue_name, deduplication_id)
        self.workflow_id = workflow_id
        self.queue_name = queue_name
        self.deduplication_id = deduplication_id

    def __str__(self) -> str:
        return (
            f"workflow {self.workflow_id!r} was not enqueued: deduplication ID "
            f"{self.deduplication_id!r} is held by another workflow on queue "
            f"{self.queue_name!r} that is still enqueued or running"
        )


class StepTimeoutError(EngineError):
    """A step's attempt ran longer than its ``timeout``; retried by the step's policy like any
    other failure. A sync step's thread is abandoned (its late result is ignored)."""

    def __init__(self, step_name: str, timeout: float) -> None:
        super().__init__(step_name, timeout)
        self.step_name = step_name
        self.timeout = timeout

    def __str__(self) -> str:
        return (
            f"step {self.step_name!r} did not finish within its timeout of {self.timeout} s; "
            "raise timeout= on @engine.step if it needs longer"
        )
