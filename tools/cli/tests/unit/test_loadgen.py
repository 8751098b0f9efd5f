"""The load generator's bounds and its oracle: what the answer log says the system must hold."""

from collections import Counter

import httpx
import pytest

from opsmeter_cli.loadgen import (
    NO_ANSWER,
    Answer,
    Expected,
    LoadgenError,
    Observed,
    check_bounds,
    check_target,
    expected_from,
    gateway_rejections,
    micro_usd,
    mismatches,
    rejection_mismatches,
)


def accepted(ws: str, event: str, cost: int, *, duplicate: bool = False) -> Answer:
    return Answer(ws, f"r-{event}", 202, None, event, cost, duplicate)


def refused(ws: str, reason: str, status: int = 429) -> Answer:
    return Answer(ws, "r-x", status, reason, None, None, False)


class TestTarget:
    @pytest.mark.parametrize(
        "url", ["http://127.0.0.1:8080", "http://127.3.4.5:1", "http://[::1]:8080", "http://localhost:8080"]
    )
    def test_loopback_is_allowed(self, url: str) -> None:
        check_target(url)

    @pytest.mark.parametrize(
        "url", ["http://10.0.0.5:8080", "http://192.168.1.2", "https://api.opsmeter.io", "http://0.0.0.0:80"]
    )
    def test_anything_else_is_refused(self, url: str) -> None:
        with pytest.raises(LoadgenError, match="loopback"):
            check_target(url)

    @pytest.mark.parametrize(
        ("rate", "duration", "workspaces", "name"),
        [(0, 1, 1, "--rate"), (2001, 1, 1, "--rate"), (1, 301, 1, "--duration"), (1, 1, 51, "--workspaces")],
    )
    def test_the_load_is_bounded(self, rate: int, duration: int, workspaces: int, name: str) -> None:
        with pytest.raises(LoadgenError, match=name):
            check_bounds(rate, duration, workspaces)


class TestOracle:
    def test_costs_are_read_exactly_to_the_micro_dollar(self) -> None:
        assert micro_usd("0.000220") == 220
        assert micro_usd("12.5") == 12_500_000
        assert micro_usd("0") == 0
        with pytest.raises(LoadgenError, match="micro-USD"):
            micro_usd("0.0000001")

    def test_a_duplicate_answer_is_counted_once_and_rejections_by_reason(self) -> None:
        answers = [
            accepted("ws_a", "e1", 100),
            accepted("ws_a", "e1", 100, duplicate=True),
            accepted("ws_a", "e2", 250),
            refused("ws_a", "rate_limited"),
            refused("ws_a", "rate_limited"),
            refused("ws_b", "plan_limit_reached", 402),
        ]
        assert expected_from(answers) == {
            "ws_a": Expected(2, 350, Counter({"rate_limited": 2})),
            "ws_b": Expected(0, 0, Counter({"plan_limit_reached": 1})),
        }

    def test_a_request_never_answered_is_neither_accepted_nor_a_rejection_the_gateway_counted(self) -> None:
        answers = [accepted("ws_a", "e1", 100), Answer("ws_a", "r-gone", NO_ANSWER, None, None, None, False)]
        assert expected_from(answers) == {"ws_a": Expected(1, 100, Counter())}

    def test_an_event_answered_with_two_costs_is_an_error(self) -> None:
        with pytest.raises(LoadgenError, match="two costs"):
            expected_from([accepted("ws_a", "e1", 100), accepted("ws_a", "e1", 101, duplicate=True)])

    def test_every_disagreement_is_named(self) -> None:
        expected = {"ws_a": Expected(2, 350)}
        assert mismatches(expected, {"ws_a": Observed(2, 350, 350, 2)}) == []
        assert mismatches(expected, {"ws_a": Observed(3, 350, 349, 2)}) == [
            "ws_a: /usage requests 3, answers say 2",
            "ws_a: policy engine spend micro-USD 349, answers say 350",
        ]

    def test_rejection_counters_must_match_the_answers(self) -> None:
        expected = {"ws_a": Expected(0, 0, Counter({"rate_limited": 2}))}
        assert rejection_mismatches(expected, Counter({"rate_limited": 2})) == []
        assert rejection_mismatches(expected, Counter({"rate_limited": 1, "invalid_payload": 1})) == [
            "rejections invalid_payload: gateway counted 1, answers say 0",
            "rejections rate_limited: gateway counted 1, answers say 2",
        ]


METRICS = """\
# TYPE opsmeter_ingest_events_total counter
opsmeter_ingest_events_total{reason="accepted",status="202"} 900.0
opsmeter_ingest_events_total{reason="rate_limited",status="429"} 7.0
opsmeter_ingest_events_total{reason="unavailable",status="503"} 2.0
opsmeter_ingest_rejected_requests_total{reason="unavailable",status="503"} 64.0
opsmeter_ingest_rejected_requests_total{reason="invalid_api_key",status="401"} 1.0
"""


async def test_the_gateways_rejections_count_requests_refused_as_a_whole_too() -> None:
    transport = httpx.MockTransport(lambda _: httpx.Response(200, text=METRICS))
    async with httpx.AsyncClient(transport=transport) as http:
        counted = await gateway_rejections(http, "http://gateway")
    assert counted == Counter({"unavailable": 66, "rate_limited": 7, "invalid_api_key": 1})
