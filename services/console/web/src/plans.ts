import { useQuery } from "@tanstack/react-query";
import { api } from "./api/client";
import type { PlanTier } from "./api/types";
import { useWorkspace } from "./context";

const ORDER: PlanTier[] = ["free", "starter", "pro", "team", "enterprise"];

export const PLAN_LABELS: Record<PlanTier, string> = { free: "Free", starter: "Starter", pro: "Pro", team: "Team", enterprise: "Enterprise" };

export function planAtLeast(plan: PlanTier, required: PlanTier): boolean {
  return ORDER.indexOf(plan) >= ORDER.indexOf(required);
}

/** The workspace's plan tier (undefined while loading, or when it could not be read: then `error` says why, so a
 * page shows the failure instead of waiting for good); pages skip the calls their plan does not include. */
export function usePlanTier(): { tier: PlanTier | undefined; error: unknown } {
  const { session } = useWorkspace();
  const q = useQuery({ queryKey: ["plan", session.workspaceId], queryFn: () => api.get("billing", "/v1/workspaces/{workspace_id}/plan") });
  return { tier: q.data?.planTier, error: q.data ? null : q.error };
}
