import { afterEach, describe, expect, it, vi } from "vitest";
import { act, cleanup, renderHook } from "@testing-library/react";
import { dayRange, presetPeriod } from "../period";
import { ROLL_MS, usePeriod } from "../usePeriod";

afterEach(() => {
  cleanup();
  vi.useRealTimers();
});

describe("a preset's window", () => {
  it("holds every event up to now: it ends at the end of the current minute", () => {
    const now = Date.parse("2026-12-07T17:41:30.250Z");
    expect(presetPeriod("7d", now)).toEqual({ from: "2026-11-30T17:42:00.000Z", to: "2026-12-07T17:42:00.000Z" });
    expect(presetPeriod("24h", Date.parse("2026-12-07T17:41:00.000Z")).to).toBe("2026-12-07T17:42:00.000Z");
  });

  it("rolls forward with the clock while the page is open; a custom range stays", () => {
    vi.useFakeTimers();
    vi.setSystemTime(Date.parse("2026-12-07T17:41:30Z"));
    const { result } = renderHook(() => usePeriod("7d"));
    expect(result.current.period.to).toBe("2026-12-07T17:42:00.000Z");
    expect(result.current.rolling).toBe(true);
    act(() => {
      vi.advanceTimersByTime(4 * ROLL_MS);
    });
    expect(result.current.period.to).toBe("2026-12-07T17:43:00.000Z");

    const days = dayRange("2026-12-01", "2026-12-02");
    if (days === null) throw new Error("dayRange refused a valid range of days");
    act(() => result.current.choose("custom", days));
    act(() => {
      vi.advanceTimersByTime(10 * ROLL_MS);
    });
    expect(result.current.period).toEqual(days);
    expect(result.current.rolling).toBe(false);
  });
});
