/** Errors the API answered, in its standard envelope. */
import { parseRetryAfter } from "./retry.js";
import type { ErrorBody } from "./types.js";

/**
 * The HTTP status of each error code (`components.x-error-codes` of docs/openapi.json; a test
 * holds them equal): errors inside a stream or a session carry a code but no status of their own.
 */
export const STATUS_BY_CODE: Readonly<Record<string, number>> = {
  bad_request: 400,
  circuit_open: 503,
  conflict: 409,
  failed_precondition: 409,
  gone: 410,
  internal: 500,
  invalid_json: 400,
  invalid_model_output: 502,
  method_not_allowed: 405,
  model_not_found: 502,
  model_unavailable: 503,
  not_found: 404,
  payload_too_large: 413,
  permission_denied: 403,
  rate_limited: 429,
  token_budget_exceeded: 429,
  unauthenticated: 401,
  unavailable: 503,
  unsupported_media_type: 415,
  upgrade_required: 426,
  upstream_error: 502,
  upstream_timeout: 504,
  validation_failed: 422,
};

/** The status an error code stands for (500 for a code this version does not know). */
export function statusOf(code: string): number {
  return STATUS_BY_CODE[code] ?? 500;
}

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
