/** Errors the API answered, in its standard envelope. */
import { parseRetryAfter } from "./retry.js";
import type { ErrorBody } from "./types.js";

/** An error answered by the API: HTTP status, the envelope's body, and Retry-After if any. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly body: ErrorBody,
    readonly retryAfterMs: number | null,
  ) {
    super(`${status} ${body.code}: ${body.message}`);
    this.name = "ApiError";
  }

  /** The machine-readable code (`rate_limited`, `not_found`…): what a client branches on. */
  get code(): string {
    return this.body.code;
  }
}

/** The ApiError of a non-2xx response (a body that is not the envelope still gives one). */
export async function toApiError(response: Response): Promise<ApiError> {
  const retryAfterMs = parseRetryAfter(response.headers.get("Retry-After"));
  let body: ErrorBody;
  try {
    body = ((await response.json()) as { error: ErrorBody }).error;
    if (typeof body?.code !== "string") throw new TypeError("not the error envelope");
  } catch {
    body = {
      code: "http_error",
      message: response.statusText || `HTTP ${response.status}`,
      details: [],
      request_id: response.headers.get("X-Request-Id") ?? "",
    };
  }
  return new ApiError(response.status, body, retryAfterMs);
}
