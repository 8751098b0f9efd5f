"""One-per-period notices the gateway owes the rest of the system (plan limit reached)."""

from datetime import timedelta

from redis.asyncio import Redis
from redis.exceptions import RedisError

from opsmeter_contracts import Topics
from opsmeter_contracts.events import PlanLimitReached, PlanLimitReachedPayload
from opsmeter_ingest.windows import period_bounds
from opsmeter_runtime.kafka import EventPublisher, PublishError
from opsmeter_runtime.logs import get_logger
from opsmeter_runtime.redis import workspace_tag

log = get_logger(__name__)


def notice_key(workspace_id: str, period: str, quota: int) -> str:
    return f"opsmeter:quota:{workspace_tag(workspace_id)}:plan-limit-notice:{period}:{quota}"


class PlanLimitNotices:
    """Publishes ``ingest.plan_limit_reached`` once per crossing, however many requests hit it: once per workspace,
    period and quota (a workspace that upgrades mid-month and uses up its new quota is told again)."""

    def __init__(self, redis: Redis, publisher: EventPublisher) -> None:
        self._redis = redis
        self._publisher = publisher

    async def reached(self, workspace_id: str, plan: str | None, quota: int, period: str) -> None:
        key = notice_key(workspace_id, period, quota)
        try:
            first = await self._redis.set(key, "1", nx=True, ex=int(timedelta(days=40).total_seconds()))
        except RedisError as exc:
            log.warning("plan_limit_notice_skipped", error=str(exc))
            return
        if not first:
            return
        _, period_end = period_bounds(period)
        event = PlanLimitReached.new(
            workspace_id,
            PlanLimitReachedPayload(
                plan=plan or "free", monthly_request_quota=quota, period=period, period_end=period_end
            ),
        )
        try:
            await self._publisher.publish(Topics.POLICY_DECISIONS, event)
        except PublishError as exc:
            log.error("plan_limit_notice_failed", error=str(exc))
            await self._redis.delete(key)
