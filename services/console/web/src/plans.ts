import { useQuery } from "@tanstack/react-query";
import { api } from "./api/client";
import type { PlanTier } from "./api/types";
import { useWorkspace } from "./context";

const ORDER: PlanTier[] = ["free", "starter", "pro", "team", "enterprise"];

export const PLAN_LABELS: Record<PlanTier, string> = { free: "Free", starter: "Starter", pro: "Pro", team: "Team", enterprise: "Enterprise" };

export function planAtLeast(plan: PlanTier, required: PlanTier): boolean {
  return ORDER.indexOf(plan) >= ORDER.indexOf(required);
}

/** The workspace's plan tier (undefined while loading): pages skip the calls their plan does not include. */
export function usePlanTier(): PlanTier | undefined {
  const { session } = useWorkspace();
  const q = useQuery({ queryKey: ["plan", session.workspaceId], queryFn: () => api.get("billing", "/v1/workspaces/{workspace_id}/plan") });
  return q.data?.planTier;
}
