/**
 * An error answer of the ds01 API, kept whole so the panel can show the
 * server's message and its hint (what to do) instead of a status code.
 */
import { IErrorBody } from './types';

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly body: IErrorBody
  ) {
    super(body.message);
  }

  static from(status: number, data: any, text: string): ApiError {
    if (data && typeof data === 'object' && typeof data.message === 'string') {
      return new ApiError(status, { error: data.error ?? 'Error', ...data });
    }
    if (status === 404) {
      return new ApiError(404, {
        error: 'NotFound',
        message: 'The ds01 server extension is not answering (404).',
        hint: 'Enable it: jupyter server extension enable ds01_jupyter, then restart JupyterLab.'
      });
    }
    const reason = (data && (data.message || data.reason)) || text.slice(0, 200) || `HTTP ${status}`;
    return new ApiError(status, { error: 'HTTPError', message: String(reason) });
  }

  get hint(): string {
    return this.body.hint ?? '';
  }

  /** What to show a person: the message and, when the server gave one, what to do. */
  describe(): string {
    return this.hint ? `${this.message} ${this.hint}` : this.message;
  }
}

/** A readable sentence for anything thrown. */
export function describeError(error: unknown): string {
  if (error instanceof ApiError) {
    return error.describe();
  }
  return error instanceof Error ? error.message : String(error);
}
