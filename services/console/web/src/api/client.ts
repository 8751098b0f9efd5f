// The browser talks only to the console's origin: /api/session and /api/<service>/<path> (the proxy
// adds the session's admin token). Paths, query parameters and request bodies are typed from the
// services' OpenAPI schemas (src/api/schema, generated); answers are typed in src/api/types.ts.
import type { paths as AlertingPaths } from "./schema/alerting";
import type { paths as BillingPaths } from "./schema/billing";
import type { paths as GatewayPaths } from "./schema/gateway";
import type { paths as PolicyPaths } from "./schema/policy";
import type { paths as ReportingPaths } from "./schema/reporting";
import type { Answers } from "./types";

export interface Services {
  gateway: GatewayPaths;
  policy: PolicyPaths;
  alerting: AlertingPaths;
  billing: BillingPaths;
  reporting: ReportingPaths;
}
export type Service = keyof Services;
type Method = "get" | "put" | "post" | "delete";

type Operation<S extends Service, P extends keyof Services[S], M extends Method> = Services[S][P] extends Record<M, infer O> ? O : never;
export type PathsFor<S extends Service, M extends Method> = {
  [P in keyof Services[S]]: Services[S][P] extends Record<M, { parameters: unknown }> ? P : never;
}[keyof Services[S]] & string;
export type QueryOf<S extends Service, P extends keyof Services[S], M extends Method> =
  Operation<S, P, M> extends { parameters: { query?: infer Q } } ? (Q extends undefined ? never : Q) : never;
export type BodyOf<S extends Service, P extends keyof Services[S], M extends Method> =
  Operation<S, P, M> extends { requestBody?: { content: { "application/json": infer B } } } ? B : never;

/** The answer's type for a route (src/api/types.ts), by service, method and path. */
export type AnswerOf<S extends Service, M extends Method, P extends string> = S extends keyof Answers
  ? `${M} ${P}` extends keyof Answers[S]
    ? Answers[S][`${M} ${P}`]
    : unknown
  : unknown;

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly body: Record<string, unknown>,
  ) {
    super(typeof body.message === "string" ? body.message : typeof body.detail === "string" ? body.detail : `HTTP ${status}`);
  }
  get reason(): string | undefined {
    return typeof this.body.reason === "string" ? this.body.reason : typeof this.body.error === "string" ? this.body.error : undefined;
  }
}

async function parse<R>(answer: Response): Promise<R> {
  const text = await answer.text();
  let body: unknown = null;
  try {
    body = text ? JSON.parse(text) : null;
  } catch {
    body = { message: text };
  }
  if (!answer.ok) throw new ApiError(answer.status, (body ?? {}) as Record<string, unknown>);
  return body as R;
}

let workspaceId = "";
export function setWorkspace(id: string): void {
  workspaceId = id;
}

/** A query string's values: every query parameter in the services' schemas is a string, number or boolean. */
type QueryParams = Record<string, string | number | boolean | null | undefined>;

function url(service: string, path: string, query?: QueryParams): string {
  const filled = path.replace("{workspace_id}", encodeURIComponent(workspaceId)).replace(/^\//, "");
  const params = new URLSearchParams();
  for (const [k, v] of Object.entries(query ?? {})) if (v !== undefined && v !== null && v !== "") params.set(k, String(v));
  const qs = params.toString();
  return `/api/${service}/${filled}${qs ? `?${qs}` : ""}`;
}

export interface Options<Q, B> {
  query?: Q;
  body?: B;
  params?: Record<string, string>;
  headers?: Record<string, string>;
}

/** Set from the moment sign-out starts until the next sign-in: no API request leaves the page without a session
 * (a query still mounted, or a page the sign-out's navigation mounts, would only get 401s). */
let signedOut = false;
/** Set when the server ended the session (its age, a sign-out elsewhere, a revoked token): the sign-in page says so. */
let ended = false;
export const SESSION_ENDED = "opsmeter:session-ended";

async function call<R>(method: string, service: string, path: string, opts: Options<unknown, unknown>): Promise<R> {
  if (signedOut) throw new ApiError(401, { reason: "unauthorized", message: "signed out" });
  let p = path;
  for (const [k, v] of Object.entries(opts.params ?? {})) p = p.replace(`{${k}}`, encodeURIComponent(v));
  const answer = await fetch(url(service, p, opts.query as QueryParams | undefined), {
    method: method.toUpperCase(),
    credentials: "same-origin",
    headers: { ...(opts.body !== undefined ? { "Content-Type": "application/json" } : {}), ...(opts.headers ?? {}) },
    body: opts.body !== undefined ? JSON.stringify(opts.body) : undefined,
  });
  if (answer.status === 401) sessionEnded();
  return parse<R>(answer);
}

/** The proxy answers 401 only without a live session: stop every other request and go to the sign-in page
 * (once: a sign-out may have started while the request was on its way). */
function sessionEnded(): void {
  if (signedOut) return;
  signedOut = true;
  ended = true;
  window.dispatchEvent(new Event(SESSION_ENDED));
}

export const api = {
  get<S extends Service, P extends PathsFor<S, "get">>(service: S, path: P, opts: Options<QueryOf<S, P, "get">, never> = {}): Promise<AnswerOf<S, "get", P>> {
    return call("get", service, path, opts);
  },
  put<S extends Service, P extends PathsFor<S, "put">>(service: S, path: P, opts: Options<QueryOf<S, P, "put">, BodyOf<S, P, "put">>): Promise<AnswerOf<S, "put", P>> {
    return call("put", service, path, opts);
  },
  post<S extends Service, P extends PathsFor<S, "post">>(service: S, path: P, opts: Options<QueryOf<S, P, "post">, BodyOf<S, P, "post">> = {}): Promise<AnswerOf<S, "post", P>> {
    return call("post", service, path, opts);
  },
  delete<S extends Service, P extends PathsFor<S, "delete">>(service: S, path: P, opts: Options<QueryOf<S, P, "delete">, never> = {}): Promise<AnswerOf<S, "delete", P>> {
    return call("delete", service, path, opts);
  },
  /** An export's URL through the proxy (the browser downloads it with the session cookie). */
  href<S extends Service>(service: S, path: PathsFor<S, "get">, query: QueryParams): string {
    return url(service, path, query);
  },
};

export interface Session {
  signedIn: true;
  workspaceId: string;
  role: "owner" | "admin" | "member";
}

export const session = {
  async current(): Promise<Session | null> {
    const who = await parse<Session | { signedIn: false }>(await fetch("/api/session", { credentials: "same-origin" }));
    return who.signedIn ? who : null;
  },
  async signIn(token: string): Promise<Session> {
    const who = await parse<Session>(
      await fetch("/api/session", {
        method: "POST",
        credentials: "same-origin",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ token }),
      }),
    );
    signedOut = false;
    ended = false;
    return who;
  },
  /** Whether the server ended the last session (not a sign-out on this page). */
  ended(): boolean {
    return ended;
  },
  async signOut(): Promise<void> {
    signedOut = true;
    await fetch("/api/session", { method: "DELETE", credentials: "same-origin" });
  },
};
