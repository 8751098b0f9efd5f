from opsmeter_reporting.api.views import delta_json, top_drivers_json, totals_json
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


class TestTopDrivers:
    def test_past_ten_keys_one_row_holds_the_rest_so_the_rows_add_up(self) -> None:
        keys = {f"model-{n:02d}": Totals(requests=1, total_tokens=10, cost_micro_usd=100 * (n + 1)) for n in range(13)}
        rows = top_drivers_json(keys)
        assert [r["key"] for r in rows[:2]] == ["model-12", "model-11"]
        assert len(rows) == 11
        assert (rows[-1]["key"], rows[-1]["costMicroUsd"], rows[-1]["requests"]) == ("(3 others)", 600, 3)
        assert sum(r["costMicroUsd"] for r in rows) == sum(t.cost_micro_usd for t in keys.values())

    def test_ten_keys_or_fewer_have_no_other_row(self) -> None:
        keys = {f"e{n}": Totals(requests=1, cost_micro_usd=n) for n in range(10)}
        assert [r["key"] for r in top_drivers_json(keys)][-1] == "e0"
