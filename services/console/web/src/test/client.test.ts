import { afterEach, describe, expect, it, vi } from "vitest";
import { ApiError, api, session } from "../api/client";

describe("signing out", () => {
  afterEach(() => vi.unstubAllGlobals());

  it("sends no API request from sign-out until the next sign-in", async () => {
    const sent: string[] = [];
    vi.stubGlobal("fetch", (url: string, init?: RequestInit): Promise<Response> => {
      sent.push(`${init?.method ?? "GET"} ${url}`);
      const body = url === "/api/session" ? { signedIn: true, workspaceId: "ws_a", role: "owner" } : { ok: true };
      return Promise.resolve(new Response(JSON.stringify(body), { status: 200 }));
    });

    await session.signOut();
    const refused = api.get("gateway", "/v1/workspaces/{workspace_id}/status");
    await expect(refused).rejects.toBeInstanceOf(ApiError);
    await expect(refused).rejects.toMatchObject({ status: 401 });
    expect(sent).toEqual(["DELETE /api/session"]);

    await session.signIn("om_adm_token");
    await api.get("gateway", "/v1/workspaces/{workspace_id}/status");
    expect(sent.slice(1)).toEqual(["POST /api/session", expect.stringMatching(/^GET \/api\/gateway\/v1\/workspaces\/.*\/status$/)]);
  });
});
