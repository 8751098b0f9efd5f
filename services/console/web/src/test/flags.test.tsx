import { afterEach, describe, expect, it } from "vitest";
import { act, cleanup, render, screen } from "@testing-library/react";
import { MemoryRouter } from "react-router-dom";
import { bannerFor, newToasts, PLAN_LIMIT_BANNER, toastsFor } from "../flags";
import { Notices } from "../components/Notices";

afterEach(cleanup);

describe("toast and banner rules (the product notes' client behaviour)", () => {
  it("warns with the notes' words when budgetWarning is set, on either name", () => {
    expect(toastsFor({ budgetWarning: true }).map((t) => t.title)).toEqual(["Budget warning threshold reached"]);
    expect(toastsFor({ isBudgetWarning: true }).map((t) => t.detail)).toEqual(["Starter and above include basic budget alerts."]);
  });
  it("says budget exceeded with the containment guidance", () => {
    const [t] = toastsFor({ budgetExceeded: true });
    expect(t.title).toBe("Budget exceeded");
    expect(t.detail).toBe("Review drivers and containment steps. Telemetry stays active unless a separate hard-stop policy is enabled.");
  });
  it("shows nothing when no flag is set", () => {
    expect(toastsFor({ budgetWarning: false, budgetExceeded: false })).toEqual([]);
    expect(bannerFor({ telemetryPaused: false, reason: null })).toBeNull();
  });
  it("shows the upgrade banner on plan_limit_reached or telemetryPaused", () => {
    expect(bannerFor({ reason: "plan_limit_reached" })).toBe("Telemetry paused. Plan limit reached. Provider calls continue.");
    expect(bannerFor({ telemetryPaused: true })).toBe(PLAN_LIMIT_BANNER);
  });
  it("does not repeat a toast while its flag stays set", () => {
    expect(newToasts({ budgetWarning: true }, new Set(["budget-warning"]))).toEqual([]);
    expect(newToasts({ budgetWarning: true, budgetExceeded: true }, new Set(["budget-warning"])).map((t) => t.id)).toEqual(["budget-exceeded"]);
  });
});

describe("<Notices>", () => {
  it("renders the toast once the flag turns on, and the banner with an upgrade button", () => {
    const view = render(<MemoryRouter><Notices flags={{ budgetWarning: false }} /></MemoryRouter>);
    expect(screen.queryByText("Budget warning threshold reached")).toBeNull();
    act(() => view.rerender(<MemoryRouter><Notices flags={{ budgetWarning: true, telemetryPaused: true }} /></MemoryRouter>));
    expect(screen.getByText("Budget warning threshold reached")).toBeTruthy();
    expect(screen.getByText(PLAN_LIMIT_BANNER)).toBeTruthy();
    expect(screen.getByRole("link", { name: "Upgrade plan" }).getAttribute("href")).toBe("/billing");
  });
});
