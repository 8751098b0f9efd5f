"""Deciding in-process while Redis is away: nobody waits for it, and the window counts on from Redis's count."""

from dataclasses import replace

from opsmeter_ingest.adapters.admission import DegradedAdmission
from opsmeter_ingest.ports import Admission, AdmitItem, Admitted
from opsmeter_runtime.projections import PolicyStatus

MINUTE = 1_800_000_000 - 1_800_000_000 % 60  # the start of a minute


def _items(n: int) -> list[AdmitItem]:
    return [AdmitItem(f"req{i}", "r", 1, f"e{i}", b"{}") for i in range(n)]


def _known(rate_limit: int, rate_used: int, now: float) -> Admission:
    return Admission(
        rate_limit=rate_limit,
        rate_used=rate_used,
        window_end=(int(now // 60) + 1) * 60,
        quota_limit=None,
        quota_used=0,
        period="2027-01",
        policy=PolicyStatus(),
        plan="starter",
        decisions=[Admitted()],
    )


class TestTheWindowWhileRedisIsAway:
    def test_it_counts_on_from_what_redis_had_in_this_window(self) -> None:
        degraded = DegradedAdmission(120)
        degraded.remember("ws_a", _known(100, 60, MINUTE + 10))
        decisions = degraded.admit("ws_a", _items(50), MINUTE + 20).decisions
        assert decisions.count(Admitted()) == 40
        assert decisions.count("rate_limited") == 10

    def test_a_new_window_starts_from_zero_with_the_workspace_limit(self) -> None:
        degraded = DegradedAdmission(120)
        degraded.remember("ws_a", _known(100, 100, MINUTE + 10))
        decisions = degraded.admit("ws_a", _items(120), MINUTE + 70).decisions
        assert decisions.count(Admitted()) == 100
        assert decisions.count("rate_limited") == 20

    def test_a_workspace_never_seen_gets_the_default_limit(self) -> None:
        decisions = DegradedAdmission(120).admit("ws_new", _items(130), MINUTE).decisions
        assert decisions.count(Admitted()) == 120


class TestHardStopWhileRedisIsAway:
    def test_the_last_known_hard_stop_refuses_real_events_only(self) -> None:
        degraded = DegradedAdmission(120)
        stopped = PolicyStatus(budget_exceeded=True, enforcement="hard_stop")
        degraded.remember("ws_a", replace(_known(100, 0, MINUTE), policy=stopped))
        items = [AdmitItem("real", "r", 1, "e1", b"{}"), AdmitItem("test", "o", 1, "e2", b"{}")]
        assert degraded.admit("ws_a", items, MINUTE + 1).decisions == ["budget_stop", Admitted(False, True)]

    def test_the_last_known_scoped_stop_refuses_that_scopes_events_only(self) -> None:
        degraded = DegradedAdmission(120)
        stopped = PolicyStatus(
            budget_exceeded=True,
            enforcement="hard_stop",
            workspace_exceeded=False,
            stopped_scopes=(("model", "gpt-4o"),),
        )
        degraded.remember("ws_a", replace(_known(100, 0, MINUTE), policy=stopped))
        items = [
            AdmitItem("big", "r", 1, "e1", b"{}", ("chat", "gpt-4o", "u")),
            AdmitItem("mini", "r", 1, "e2", b"{}", ("chat", "gpt-4o-mini", "u")),
        ]
        assert degraded.admit("ws_a", items, MINUTE + 1).decisions == ["budget_stop", Admitted(False, True)]


class TestNobodyWaitsForRedisWhileItIsAway:
    def test_after_a_failure_requests_decide_here_until_one_probes_again(self) -> None:
        degraded = DegradedAdmission(120, probe_interval_s=0.5)
        assert not degraded.redis_away(100.0)
        degraded.mark_away(100.0)
        assert degraded.redis_away(100.1)
        assert degraded.redis_away(100.49)
        assert not degraded.redis_away(100.5)  # this one tries Redis
        assert degraded.redis_away(100.6)  # the others do not wait behind the probe
        degraded.mark_back()
        assert not degraded.redis_away(100.7)
        assert not degraded.redis_away(100.8)
