from opsmeter_reporting.api.views import delta_json, totals_json
from opsmeter_reporting.domain import Totals


class TestCostPerRequest:
    def test_half_a_micro_usd_rounds_up_as_costs_do(self) -> None:
        # ADR 8: rounded half up. 5 / 2 = 2.5 -> 3 (half to even would say 2); 9 / 2 = 4.5 -> 5 (not 4).
        assert totals_json(Totals(requests=2, cost_micro_usd=5))["costPerRequestMicroUsd"] == 3
        assert totals_json(Totals(requests=2, cost_micro_usd=9))["costPerRequestUsd"] == "0.000005"
        assert totals_json(Totals(requests=3, cost_micro_usd=4))["costPerRequestMicroUsd"] == 1

    def test_a_change_of_half_a_micro_usd_rounds_away_from_zero(self) -> None:
        up = delta_json(Totals(requests=2, cost_micro_usd=9), Totals(requests=1, cost_micro_usd=2))  # 4.5 - 2
        down = delta_json(Totals(requests=2, cost_micro_usd=1), Totals(requests=1, cost_micro_usd=1))  # 0.5 - 1
        assert (up["costPerRequestMicroUsd"], down["costPerRequestMicroUsd"]) == (3, -1)
