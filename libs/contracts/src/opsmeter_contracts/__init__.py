"""Opsmeter's versioned event contracts: envelopes, payloads, topic names. No I/O.

Each module of events registers its classes (``@event``); importing this package registers them all.
"""

from opsmeter_contracts import alerting as alerting
from opsmeter_contracts import billing as billing
from opsmeter_contracts import policy as policy
from opsmeter_contracts import pricing as pricing
from opsmeter_contracts.codec import AnyEvent, DecodeError, decode_event, encode_event
from opsmeter_contracts.envelope import EventEnvelope, Payload
from opsmeter_contracts.events import (
    CredentialIssued,
    CredentialIssuedPayload,
    CredentialRevoked,
    CredentialRevokedPayload,
    LlmRequestIngested,
    LlmRequestIngestedPayload,
    WorkspaceCreated,
    WorkspaceCreatedPayload,
)
from opsmeter_contracts.reporting import SpikeDetected, SpikeDetectedPayload, SpikeDriverPayload
from opsmeter_contracts.topics import Topics

__all__ = [
    "AnyEvent",
    "CredentialIssued",
    "CredentialIssuedPayload",
    "CredentialRevoked",
    "CredentialRevokedPayload",
    "DecodeError",
    "EventEnvelope",
    "LlmRequestIngested",
    "LlmRequestIngestedPayload",
    "Payload",
    "SpikeDetected",
    "SpikeDetectedPayload",
    "SpikeDriverPayload",
    "Topics",
    "WorkspaceCreated",
    "WorkspaceCreatedPayload",
    "decode_event",
    "encode_event",
]
