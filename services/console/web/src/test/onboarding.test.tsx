import { afterEach, describe, expect, it, vi } from "vitest";
import { cleanup, render, screen } from "@testing-library/react";
import { QueryClient, QueryClientProvider } from "@tanstack/react-query";
import { WorkspaceContext } from "../context";
import { Onboarding } from "../pages/Onboarding";

afterEach(() => {
  cleanup();
  vi.unstubAllGlobals();
});

describe("the Onboarding page when the plan cannot be read", () => {
  it("says why instead of waiting for good", async () => {
    vi.stubGlobal(
      "fetch",
      vi.fn(() => Promise.resolve(new Response(JSON.stringify({ reason: "unavailable", message: "billing is restarting" }), { status: 503 }))),
    );
    const client = new QueryClient({ defaultOptions: { queries: { retry: false } } });
    render(
      <QueryClientProvider client={client}>
        <WorkspaceContext.Provider
          value={{ session: { signedIn: true, workspaceId: "ws_abcdefgh12", role: "owner" }, canChange: true, dataMode: "real", setDataMode: () => {}, timeZone: "UTC" }}
        >
          <Onboarding />
        </WorkspaceContext.Provider>
      </QueryClientProvider>,
    );
    expect(await screen.findByText(/billing is restarting/)).toBeTruthy();
    expect(screen.queryByText(/Loading the plan/)).toBeNull();
  });
});
