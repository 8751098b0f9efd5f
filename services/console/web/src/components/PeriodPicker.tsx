import { useState } from "react";
import { dayRange, isoDay, presetPeriod, type Period, type Preset } from "../period";

/** Presets and a custom range of days; tells the page the chosen period. */
export function PeriodPicker({ presets, value, onChange }: { presets: Exclude<Preset, "custom">[]; value: Preset; onChange: (preset: Preset, period: Period) => void }) {
  const [fromDay, setFromDay] = useState(() => isoDay(Date.now() - 14 * 86_400_000));
  const [toDay, setToDay] = useState(() => isoDay(Date.now()));
  const applyCustom = (f: string, t: string) => {
    const period = dayRange(f, t);
    if (period) onChange("custom", period);
  };
  return (
    <div className="period" role="group" aria-label="Period">
      {presets.map((p) => (
        <button key={p} className={value === p ? "active" : ""} aria-pressed={value === p} onClick={() => onChange(p, presetPeriod(p))}>
          {p}
        </button>
      ))}
      <button className={value === "custom" ? "active" : ""} aria-pressed={value === "custom"} onClick={() => applyCustom(fromDay, toDay)}>
        custom
      </button>
      {value === "custom" && (
        <span className="custom">
          <input type="date" aria-label="From" value={fromDay} onChange={(e) => { setFromDay(e.target.value); applyCustom(e.target.value, toDay); }} />
          <span>to</span>
          <input type="date" aria-label="To" value={toDay} onChange={(e) => { setToDay(e.target.value); applyCustom(fromDay, e.target.value); }} />
        </span>
      )}
    </div>
  );
}
