import { keepPreviousData } from "@tanstack/react-query";
import { useEffect, useMemo, useState } from "react";
import { presetPeriod, type Period, type Preset } from "./period";

/** How often a preset's window rolls forward and its figures are read again. */
export const ROLL_MS = 15_000;

export interface PagePeriod {
  preset: Preset;
  period: Period;
  /** A preset (not a custom range): its window follows the clock, so its figures are read again every ROLL_MS. */
  rolling: boolean;
  choose: (preset: Preset, period: Period) => void;
}

/** A page's period. A preset ("7d") is the last 7 days as of now, now moving on: telemetry sent while the page is
 * open shows up in it without a reload. A custom range of days stays as chosen. */
export function usePeriod(initial: Exclude<Preset, "custom">): PagePeriod {
  const [preset, setPreset] = useState<Preset>(initial);
  const [custom, setCustom] = useState<Period | null>(null);
  const [now, setNow] = useState(() => Date.now());
  const rolling = preset !== "custom";
  useEffect(() => {
    if (!rolling) return;
    const timer = window.setInterval(() => setNow(Date.now()), ROLL_MS);
    return () => window.clearInterval(timer);
  }, [rolling]);
  const minute = Math.floor(now / 60_000);
  const period = useMemo(
    () => (preset === "custom" && custom ? custom : presetPeriod(preset === "custom" ? initial : preset, minute * 60_000)),
    [preset, custom, minute, initial],
  );
  const choose = (next: Preset, range: Period) => {
    setPreset(next);
    if (next === "custom") setCustom(range);
    else setNow(Date.now());
  };
  return { preset, period, rolling, choose };
}

/** Query options for figures of the page's period: a rolling preset is read again every ROLL_MS, showing the last
 * figures (not a loading state) while its window moves on to the next minute. */
export function liveRefresh(rolling: boolean) {
  return rolling ? { refetchInterval: ROLL_MS, placeholderData: keepPreviousData } : {};
}
