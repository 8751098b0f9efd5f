import { afterEach, describe, expect, it, vi } from "vitest";
import { cleanup, render, screen } from "@testing-library/react";
import { QueryClient, QueryClientProvider } from "@tanstack/react-query";
import type { AlertSettings, UnitCostRule } from "../api/types";
import { WorkspaceContext, type Workspace } from "../context";
import { Settings } from "../pages/Settings";

afterEach(() => {
  cleanup();
  vi.unstubAllGlobals();
});

const WORKSPACE: Workspace = {
  session: { signedIn: true, workspaceId: "ws_abcdefgh12", role: "owner" },
  canChange: true,
  dataMode: "real",
  setDataMode: () => undefined,
  timeZone: "UTC",
};
const ALERTS: AlertSettings = {
  modes: { budget: "daily_summary" },
  schedule: { sendTime: "09:00", timezone: "UTC" },
  cooldownSeconds: 900,
  weeklyExecutiveReport: false,
  channels: [{ type: "email", id: "email-1", to: ["ops@example.com"], enabled: true }],
  version: 3,
};
const RULE: UnitCostRule = { id: "rule-1", metric: "costPerRequest", maxUsd: "0.05", model: null, endpointTag: null, windowMinutes: 60, minRequests: 1, enabled: true };

describe("the Settings forms", () => {
  it("start from answers already in the cache (the layout reads the alert settings first)", async () => {
    vi.stubGlobal("fetch", vi.fn(() => Promise.resolve(new Response(JSON.stringify({ message: "not in this test" }), { status: 503 }))));
    const client = new QueryClient({ defaultOptions: { queries: { retry: false, staleTime: Infinity } } });
    client.setQueryData(["alert-settings", WORKSPACE.session.workspaceId], ALERTS);
    client.setQueryData(["rules", WORKSPACE.session.workspaceId], { rules: [RULE] });
    render(
      <QueryClientProvider client={client}>
        <WorkspaceContext.Provider value={WORKSPACE}>
          <Settings />
        </WorkspaceContext.Provider>
      </QueryClientProvider>,
    );
    expect((await screen.findByLabelText<HTMLInputElement>("Email recipients")).value).toBe("ops@example.com");
    expect(screen.getByLabelText<HTMLSelectElement>("Budget alerts").value).toBe("daily_summary");
    expect(screen.getByLabelText<HTMLInputElement>("Rule id").value).toBe("rule-1");
  });
});
