"""Alerting's reactions to ``policy.decisions``: one literal dict (empty until decisions exist)."""

from collections.abc import Awaitable, Callable

EVENT_HANDLERS: dict[type, list[Callable[..., Awaitable[None]]]] = {}
