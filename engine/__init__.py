"""Waymark: durable workflows for Python. The public API (see API.md)."""

from engine.client import Client
from engine.context import WorkflowContext
from engine.debounce import Debouncer
from engine.engine import Engine
from engine.errors import (
    ConflictingWorkflowError,
    EngineError,
    MaxRecoveryAttemptsExceededError,
    NonDeterministicWorkflowError,
    QueueDeduplicatedError,
    SerializationError,
    StepError,
    StepTimeoutError,
    SystemDatabaseUnavailableError,
    WorkflowCancelledError,
    WorkflowFailedError,
    WorkflowNotFoundError,
)
from engine.futures import StepFuture
from engine.handle import WorkflowHandle
from engine.records import (
    AttemptInfo,
    QueueInfo,
    ScheduleInfo,
    Status,
    StepInfo,
    WorkflowStatus,
)

__all__ = [
    "AttemptInfo",
    "Client",
    "ConflictingWorkflowError",
    "Debouncer",
    "Engine",
    "EngineError",
    "MaxRecoveryAttemptsExceededError",
    "NonDeterministicWorkflowError",
    "QueueDeduplicatedError",
    "QueueInfo",
    "ScheduleInfo",
    "SerializationError",
    "Status",
    "StepError",
    "StepFuture",
    "StepInfo",
    "StepTimeoutError",
    "SystemDatabaseUnavailableError",
    "WorkflowCancelledError",
    "WorkflowContext",
    "WorkflowFailedError",
    "WorkflowHandle",
    "WorkflowNotFoundError",
    "WorkflowStatus",
]
