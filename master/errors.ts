/**
 * Every error the master API can answer with, in one table: a stable code the CLI and scripts
 * match on, the HTTP status, and a message template. Adding a kind without its row fails to
 * compile.
 */
export type ApiErrorKind =
  | 'invalid-spec'
  | 'invalid-request'
  | 'unauthorized'
  | 'job-exists'
  | 'job-not-found'
  | 'run-not-found'
  | 'conflict'
  | 'not-found'
  | 'method-not-allowed'
  | 'body-too-large'
  | 'compacted'
  | 'future-rev'
  | 'store-unavailable'
  | 'busy'
  | 'internal';

interface ErrorRow {
  readonly code: string;
  readonly status: number;
}

const table: Record<ApiErrorKind, ErrorRow> = {
  'invalid-spec': { code: 'ETCRON_INVALID_SPEC', status: 400 },
  'invalid-request': { code: 'ETCRON_INVALID_REQUEST', status: 400 },
  'unauthorized': { code: 'ETCRON_UNAUTHORIZED', status: 401 },
  'job-exists': { code: 'ETCRON_JOB_EXISTS', status: 409 },
  'job-not-found': { code: 'ETCRON_JOB_NOT_FOUND', status: 404 },
  'run-not-found': { code: 'ETCRON_RUN_NOT_FOUND', status: 404 },
  'conflict': { code: 'ETCRON_CONFLICT', status: 409 },
  'not-found': { code: 'ETCRON_NOT_FOUND', status: 404 },
  'method-not-allowed': { code: 'ETCRON_METHOD_NOT_ALLOWED', status: 405 },
  'body-too-large': { code: 'ETCRON_BODY_TOO_LARGE', status: 413 },
  'compacted': { code: 'ETCRON_COMPACTED', status: 410 },
  'future-rev': { code: 'ETCRON_FUTURE_REV', status: 400 },
  'store-unavailable': { code: 'ETCRON_STORE_UNAVAILABLE', status: 503 },
  'busy': { code: 'ETCRON_BUSY', status: 503 },
  'internal': { code: 'ETCRON_INTERNAL', status: 500 },
};

/** A field-level problem, e.g. `{ field: 'schedule', message: 'invalid cron ...' }`. */
export interface FieldError {
  readonly field: string;
  readonly message: string;
}

export class ApiError extends Error {
  override readonly name = 'ApiError';
  readonly code: string;
  readonly status: number;
  constructor(
    readonly kind: ApiErrorKind,
    message: string,
    readonly fieldErrors: readonly FieldError[] = [],
  ) {
    super(message);
    this.code = table[kind].code;
    this.status = table[kind].status;
  }

  toJSON(): { error: { code: string; message: string; fields?: readonly FieldError[] } } {
    return {
      error: {
        code: this.code,
        message: this.message,
        ...(this.fieldErrors.length > 0 ? { fields: this.fieldErrors } : {}),
      },
    };
  }
}

/** Maps what the etcd3 client throws into an API error, by etcd's message text first. */
export function toApiError(err: unknown): ApiError {
  if (err instanceof ApiError) return err;
  const message = err instanceof Error ? err.message : String(err);
  if (message.includes('required revision has been compacted')) {
    return new ApiError('compacted', 'revision has been compacted; use a newer --rev');
  }
  if (message.includes('required revision is a future revision')) {
    return new ApiError('future-rev', 'revision is in the future');
  }
  const name = err instanceof Error ? err.name : '';
  // etcd3 stops calling an endpoint after repeated failures (a cockatiel circuit breaker).
  if (name === 'BrokenCircuitError' || message.includes('circuit breaker is open')) {
    return new ApiError('store-unavailable', 'the master cannot reach the store (connections keep failing)');
  }
  if (
    name === 'GRPCConnectFailedError' ||
    name === 'GRPCUnavailableError' ||
    name === 'GRPCDeadlineExceededError' ||
    message.includes('No connection established') ||
    message.includes('ECONNREFUSED') ||
    message.includes('Deadline exceeded')
  ) {
    return new ApiError('store-unavailable', `store unavailable: ${message}`);
  }
  return new ApiError('internal', message);
}
