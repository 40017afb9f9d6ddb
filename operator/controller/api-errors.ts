// The few facts about a failed API call the controller acts on.
export function statusCode(err: unknown): number | undefined {
  if (typeof err !== 'object' || err === null) return undefined;
  const code = (err as { code?: unknown; statusCode?: unknown }).code ?? (err as { statusCode?: unknown }).statusCode;
  return typeof code === 'number' ? code : undefined;
}

export const isNotFound = (err: unknown): boolean => statusCode(err) === 404;
export const isConflict = (err: unknown): boolean => statusCode(err) === 409;

/** The API server's own message (its Status body) when there is one. */
export function describeError(err: unknown): string {
  if (typeof err === 'object' && err !== null) {
    const e = err as { code?: unknown; body?: unknown; message?: unknown };
    const body = typeof e.body === 'string' ? parseStatusMessage(e.body) : statusMessage(e.body);
    if (body !== undefined) return typeof e.code === 'number' ? `${e.code}: ${body}` : body;
    if (typeof e.message === 'string') return e.message;
  }
  return String(err);
}

function statusMessage(body: unknown): string | undefined {
  if (typeof body !== 'object' || body === null) return undefined;
  const message = (body as { message?: unknown }).message;
  return typeof message === 'string' ? message : undefined;
}

function parseStatusMessage(body: string): string | undefined {
  try {
    return statusMessage(JSON.parse(body));
  } catch {
    return body === '' ? undefined : body;
  }
}
