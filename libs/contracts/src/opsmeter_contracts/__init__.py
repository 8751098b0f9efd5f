"""Opsmeter's versioned event contracts: envelopes, payloads, topic names. No I/O."""

from opsmeter_contracts.codec import DecodeError, decode_event, encode_event
from opsmeter_contracts.envelope import EventEnvelope
from opsmeter_contracts.events import (
    EVENT_TYPES,
    AnyEvent,
    CredentialIssued,
    CredentialIssuedPayload,
    LlmRequestIngested,
    LlmRequestIngestedPayload,
    WorkspaceCreated,
    WorkspaceCreatedPayload,
)
from opsmeter_contracts.topics import Topics

__all__ = [
    "EVENT_TYPES",
    "AnyEvent",
    "CredentialIssued",
    "CredentialIssuedPayload",
    "DecodeError",
    "EventEnvelope",
    "LlmRequestIngested",
    "LlmRequestIngestedPayload",
    "Topics",
    "WorkspaceCreated",
    "WorkspaceCreatedPayload",
    "decode_event",
    "encode_event",
]
