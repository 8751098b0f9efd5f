"""Real provider clients, a sync and an async one, wrapped by an Opsmeter client: no retries, so that a provider's
failure is the call's."""

import anthropic
import openai

from opsmeter import Opsmeter


def openai_clients(url: str, om: Opsmeter) -> tuple[openai.OpenAI, openai.AsyncOpenAI]:
    """OpenAI's clients with ``url`` as their base URL (``/v1`` included)."""
    return (
        om.wrap_openai(openai.OpenAI(api_key="sk-test", base_url=url, max_retries=0)),
        om.wrap_openai(openai.AsyncOpenAI(api_key="sk-test", base_url=url, max_retries=0)),
    )


def claude_clients(url: str, om: Opsmeter) -> tuple[anthropic.Anthropic, anthropic.AsyncAnthropic]:
    return (
        om.wrap_anthropic(anthropic.Anthropic(api_key="sk-ant", base_url=url, max_retries=0)),
        om.wrap_anthropic(anthropic.AsyncAnthropic(api_key="sk-ant", base_url=url, max_retries=0)),
    )
