// The product notes' client behaviour for the flags every ingest answer and the workspace status carry.

export interface Flags {
  budgetWarning?: boolean | null;
  isBudgetWarning?: boolean | null;
  budgetExceeded?: boolean | null;
  isBudgetExceeded?: boolean | null;
  reason?: string | null;
  telemetryPaused?: boolean | null;
  isPlanLimitReached?: boolean | null;
}

export interface Toast {
  id: "budget-warning" | "budget-exceeded";
  title: string;
  detail: string;
  level: "warning";
}

export const BUDGET_WARNING: Toast = {
  id: "budget-warning",
  title: "Budget warning threshold reached",
  detail: "Starter and above include basic budget alerts.",
  level: "warning",
};

export const BUDGET_EXCEEDED: Toast = {
  id: "budget-exceeded",
  title: "Budget exceeded",
  detail: "Review drivers and containment steps. Telemetry stays active unless a separate hard-stop policy is enabled.",
  level: "warning",
};

export const PLAN_LIMIT_BANNER = "Telemetry paused. Plan limit reached. Provider calls continue.";

/** The toasts the flags call for, in the notes' order. */
export function toastsFor(flags: Flags): Toast[] {
  const toasts: Toast[] = [];
  if (flags.isBudgetWarning || flags.budgetWarning) toasts.push(BUDGET_WARNING);
  if (flags.isBudgetExceeded || flags.budgetExceeded) toasts.push(BUDGET_EXCEEDED);
  return toasts;
}

/** The upgrade banner's text when telemetry is paused, else null. */
export function bannerFor(flags: Flags): string | null {
  return flags.reason === "plan_limit_reached" || flags.telemetryPaused === true ? PLAN_LIMIT_BANNER : null;
}

/** Toasts to show now: those the flags call for that were not already shown while the flag stayed set. */
export function newToasts(flags: Flags, alreadyShown: ReadonlySet<string>): Toast[] {
  return toastsFor(flags).filter((t) => !alreadyShown.has(t.id));
}
