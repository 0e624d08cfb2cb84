// What can go wrong talking to Petri, as two errors a caller can tell apart: the server
// answered with an error (ApiError, its message meant for the user as is), or it could
// not be reached at all (ConnectionError, with a hint at the usual cause).

export class ApiError extends Error {
  constructor(
    readonly status: number,
    /** One of lib/errors ERROR_CODES when the server sent one; `http_STATUS` otherwise. */
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = 'ApiError';
  }
}

export class ConnectionError extends Error {
  constructor(
    readonly url: string,
    readonly reason: string,
    options?: { cause?: unknown },
  ) {
    super(connectionMessage(url, reason), options);
    this.name = 'ConnectionError';
  }
}

function connectionMessage(url: string, reason: string): string {
  if (reason === 'ECONNREFUSED')
    return `cannot reach Petri at ${url}: connection refused; is 'petri server' running?`;
  if (reason === 'ENOTFOUND' || reason === 'EAI_AGAIN') return `cannot reach Petri at ${url}: host not found`;
  if (reason === 'ECONNRESET') return `cannot reach Petri at ${url}: the connection was reset`;
  if (reason === 'UND_ERR_SOCKET') return `lost the connection to Petri at ${url}: it closed mid-answer`;
  if (reason === 'UND_ERR_CONNECT_TIMEOUT') return `cannot reach Petri at ${url}: timed out connecting`;
  if (reason === 'ETIMEDOUT') return `cannot reach Petri at ${url}: it did not answer in time`;
  return `cannot reach Petri at ${url}: ${reason}`;
}

/** Builds the ApiError for an error response, whatever its body holds. */
export function apiErrorFrom(status: number, body: string, url: string): ApiError {
  try {
    const parsed = JSON.parse(body) as { error?: { code?: unknown; message?: unknown } };
    const { code, message } = parsed.error ?? {};
    if (typeof message === 'string' && message !== '') {
      return new ApiError(status, typeof code === 'string' ? code : `http_${status}`, message);
    }
  } catch {
    // Not JSON: a proxy or something other than Petri answered; say so below.
  }
  const snippet = body.trim().split('\n')[0]?.slice(0, 200) ?? '';
  const detail = snippet ? `: ${snippet}` : '';
  return new ApiError(status, `http_${status}`, `Petri at ${url} answered HTTP ${status}${detail}`);
}

// Network failures surface as system errors, sometimes wrapped (a cause) or grouped (an
// AggregateError when both IPv6 and IPv4 addresses were tried): find the first code.
const NETWORK_CODES = new Set([
  'ECONNREFUSED',
  'ENOTFOUND',
  'EAI_AGAIN',
  'ECONNRESET',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ETIMEDOUT',
  'EPIPE',
  'UND_ERR_CONNECT_TIMEOUT',
  'UND_ERR_SOCKET',
]);

export function networkErrorCode(err: unknown, depth = 0): string | undefined {
  if (depth > 4 || typeof err !== 'object' || err === null) return undefined;
  const { code, cause, errors } = err as { code?: unknown; cause?: unknown; errors?: unknown };
  if (typeof code === 'string' && NETWORK_CODES.has(code)) return code;
  if (Array.isArray(errors)) {
    for (const inner of errors) {
      const found = networkErrorCode(inner, depth + 1);
      if (found) return found;
    }
  }
  return networkErrorCode(cause, depth + 1);
}
