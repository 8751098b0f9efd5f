"""The chaos report's arithmetic: what counts as a 503 counted all the same."""

from opsmeter_cli.chaos import DEFAULT, LONG, SCENARIOS, _only_refused
from opsmeter_cli.loadgen import Answer


def answer(request: str, status: int) -> Answer:
    event = f"e-{request}" if status == 202 else None
    return Answer("ws_a", request, status, None if status == 202 else "unavailable", event, 1, False)


class TestOnlyRefused:
    def test_an_id_answered_503_then_accepted_on_a_retry_is_not_refused(self) -> None:
        answers = [answer("r1", 503), answer("r1", 202), answer("r2", 503), answer("r2", 503), answer("r3", 202)]
        assert _only_refused(answers) == {"r2"}


class TestScenarios:
    def test_every_scenario_has_a_default_and_a_long_size(self) -> None:
        assert set(SCENARIOS) == set(DEFAULT) == set(LONG)
        for name in SCENARIOS:
            assert LONG[name].events >= DEFAULT[name].events, name
