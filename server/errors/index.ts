/** The one catalog of API error codes; the status follows from the code. */
const STATUS_BY_CODE = {
  malformed_request: 400,
  unauthenticated: 401,
  forbidden: 403,
  not_found: 404,
  method_not_allowed: 405,
  repo_never_deleted: 405,
  name_taken: 409,
  conflict: 409,
  body_too_large: 413,
  range_not_satisfiable: 416,
  unsupported_media_type: 415,
  invalid_field: 422,
  internal: 500,
  unavailable: 503,
} as const satisfies Record<string, number>;

export type ErrorCode = keyof typeof STATUS_BY_CODE;

export class CairnError extends Error {
  readonly status: number;
  constructor(readonly code: ErrorCode, message: string, readonly headers: Record<string, string> = {}) {
    super(message);
    this.name = 'CairnError';
    this.status = STATUS_BY_CODE[code];
  }
  toBody() {
    return { error: { code: this.code, message: this.message } };
  }
}
