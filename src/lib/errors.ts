// Every error code Petri can answer with, in one list, with the HTTP status it maps to.
// UserError is for what the caller can fix (the message says how); anything else is internal.

export const ERROR_CODES = {
  bad_request: 400,
  invalid_archive: 400,
  unauthorized: 401,
  forbidden: 403,
  /** A team's quota (apps, memory, add-ons) would be exceeded; the message says by how much. */
  quota_exceeded: 403,
  not_found: 404,
  /** The client did not send its request in time (Node's requestTimeout). */
  request_timeout: 408,
  conflict: 409,
  payload_too_large: 413,
  /** The caller has as many uploads or pushes in flight as allowed; Retry-After says when to retry. */
  too_many_requests: 429,
  /** The request's headers are over Node's limit (answered before any route runs). */
  headers_too_large: 431,
  build_failed: 422,
  deploy_failed: 422,
  internal: 500,
  /** A database engine refused or failed an operation (its message says why). */
  engine_failed: 502,
  unavailable: 503,
} as const;

export type ErrorCode = keyof typeof ERROR_CODES;

export class UserError extends Error {
  readonly code: ErrorCode;
  constructor(code: ErrorCode, message: string) {
    super(message);
    this.name = 'UserError';
    this.code = code;
  }
  get status(): number {
    return ERROR_CODES[this.code];
  }
}

export function isUserError(err: unknown): err is UserError {
  return err instanceof UserError;
}

export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
