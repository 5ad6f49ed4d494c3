/** Retries: exponential backoff with full jitter, Retry-After honoured, AbortSignal respected. */

export interface RetryPolicy {
  /** Attempts in all, the first included. */
  attempts: number;
  initialDelayMs: number;
  maxDelayMs: number;
  /** A Retry-After longer than this (a daily budget, say) is not waited out: the error is thrown. */
  maxRetryAfterMs: number;
}

export const DEFAULT_RETRY: RetryPolicy = {
  attempts: 5,
  initialDelayMs: 200,
  maxDelayMs: 5000,
  maxRetryAfterMs: 30_000,
};

/** Exponential backoff with full jitter: a random delay up to min(max, initial * 2^n). */
export function backoffMs(attempt: number, policy: RetryPolicy, random = Math.random): number {
  const ceiling = Math.min(policy.maxDelayMs, policy.initialDelayMs * 2 ** attempt);
  return Math.floor(random() * ceiling);
}

/**
 * The wait a `Retry-After` header asks for, in milliseconds: delay-seconds or an HTTP date.
 * Anything else (negative, fractional, garbage) is `null`.
 */
export function parseRetryAfter(value: string | null, now = Date.now()): number | null {
  if (value === null) return null;
  const text = value.trim();
  if (/^[0-9]{1,10}$/.test(text)) return Number(text) * 1000;
  if (!/^[A-Za-z]{3}, /.test(text)) return null;
  const at = Date.parse(text);
  return Number.isNaN(at) ? null : Math.max(0, at - now);
}

/**
 * How long to wait before attempt `attempt + 1`: the server's Retry-After plus a little jitter
 * (so clients told the same second do not return together), else the jittered backoff.
 */
export function retryDelayMs(
  attempt: number,
  retryAfterMs: number | null,
  policy: RetryPolicy,
  random = Math.random,
): number {
  if (retryAfterMs === null) return backoffMs(attempt, policy, random);
  return retryAfterMs + Math.floor(random() * Math.min(1000, policy.initialDelayMs));
}

/** Resolves after `ms`, or rejects with the signal's reason when it aborts first. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(abortReason(signal));
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal ? abortReason(signal) : abortError());
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

/** Whether an error is the caller's abort or a timeout signal, never worth a retry. */
export function isAbort(error: unknown): boolean {
  return error instanceof Error && (error.name === "AbortError" || error.name === "TimeoutError");
}

/** The error an aborted call rejects with: named "AbortError" like fetch's, built without
 * DOMException, which React Native lacks. */
export function abortError(message = "the operation was aborted"): Error {
  const error = new Error(message);
  error.name = "AbortError";
  return error;
}

/** Why a signal aborted (`signal.reason`, missing from some polyfills), as an Error. */
export function abortReason(signal: AbortSignal): unknown {
  return signal.reason ?? abortError();
}
