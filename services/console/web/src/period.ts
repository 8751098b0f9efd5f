// Periods the pages compare: a preset or a custom range, and the previous period of equal length.

export type Preset = "1h" | "24h" | "7d" | "30d" | "custom";
export const PRESET_MS: Record<Exclude<Preset, "custom">, number> = {
  "1h": 3_600_000,
  "24h": 86_400_000,
  "7d": 7 * 86_400_000,
  "30d": 30 * 86_400_000,
};

export interface Period {
  from: string;
  to: string;
}

/** The preset's window ending at the end of the current minute: it holds every event up to `now` (windows are
 * half-open), and the queries made within one minute share their cache keys. */
export function presetPeriod(preset: Exclude<Preset, "custom">, now: number = Date.now()): Period {
  const end = (Math.floor(now / 60_000) + 1) * 60_000;
  return { from: new Date(end - PRESET_MS[preset]).toISOString(), to: new Date(end).toISOString() };
}

/** A custom range of whole UTC days, `to` included. */
export function dayRange(fromDay: string, toDay: string): Period | null {
  const from = Date.parse(`${fromDay}T00:00:00Z`);
  const to = Date.parse(`${toDay}T00:00:00Z`) + 86_400_000;
  if (!Number.isFinite(from) || !Number.isFinite(to) || from >= to) return null;
  return { from: new Date(from).toISOString(), to: new Date(to).toISOString() };
}

/** The period of the same length just before. */
export function previousPeriod(p: Period): Period {
  const from = Date.parse(p.from);
  const length = Date.parse(p.to) - from;
  return { from: new Date(from - length).toISOString(), to: p.from };
}

export function isoDay(ms: number): string {
  return new Date(ms).toISOString().slice(0, 10);
}
