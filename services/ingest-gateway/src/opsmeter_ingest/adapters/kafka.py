from opsmeter_contracts import LlmRequestIngested, Topics
from opsmeter_runtime.kafka import EventPublisher


class KafkaTelemetrySink:
    """Publishes accepted telemetry to ``telemetry.llm-requests``; returns once the broker acked it."""

    def __init__(self, publisher: EventPublisher) -> None:
        self._publisher = publisher

    async def publish(self, event: LlmRequestIngested) -> None:
        await self._publisher.publish(Topics.TELEMETRY, event)
