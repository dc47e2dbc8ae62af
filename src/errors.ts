/**
 * Error classes with stable `code`s, so callers can branch on them, and `flattenError()`
 * which turns a nested error (undici's bare `fetch failed`) into one readable line.
 */

/** An HTTP response with a status the caller did not accept. */
export class HttpStatusError extends Error {
  override readonly name = 'HttpStatusError';
  readonly code = 'ERR_EVENTSOURCE_HTTP_STATUS';
  /**
   * @param status The HTTP status code received.
   * @param body The response body as text (the server's message), possibly empty.
   * @param url The URL that answered.
   */
  constructor(
    readonly status: number,
    readonly body: string,
    readonly url: string,
    options?: { cause?: unknown },
  ) {
    super(`${url} answered ${status}${body ? `: ${body}` : ''}`, options);
  }
}

/** A stream answered 200 but not with `text/event-stream`. */
export class ContentTypeError extends Error {
  override readonly name = 'ContentTypeError';
  readonly code = 'ERR_EVENTSOURCE_CONTENT_TYPE';
  constructor(
    readonly contentType: string,
    readonly url: string,
  ) {
    super(`${url} answered with Content-Type "${contentType}", expected text/event-stream`);
  }
}

/**
 * A stream came with a `Content-Encoding` the client does not decode (it decodes `gzip`, `deflate`
 * and `br`), or its body could not be decoded.
 */
export class ContentEncodingError extends Error {
  override readonly name = 'ContentEncodingError';
  readonly code = 'ERR_EVENTSOURCE_CONTENT_ENCODING';
  /**
   * @param encoding The response's `Content-Encoding`, as sent.
   * @param url The URL that answered.
   * @param options `cause`: the decoder's error, when the body did not decode.
   */
  constructor(
    readonly encoding: string,
    readonly url: string,
    options?: { cause?: unknown },
  ) {
    super(
      options?.cause instanceof Error
        ? `the ${encoding} body could not be decoded: ${options.cause.message}`
        : `the response's Content-Encoding "${encoding}" is not one the client decodes (gzip, deflate, br)`,
      options,
    );
  }
}

/**
 * An event grew past `maxEventLength` before it was dispatched: what it holds in memory, counted in
 * UTF-16 code units (every line from its first `data` line on, field names and line ends included).
 */
export class EventTooLargeError extends Error {
  override readonly name = 'EventTooLargeError';
  readonly code = 'ERR_EVENTSOURCE_EVENT_TOO_LARGE';
  /** @param limit The `maxEventLength` passed, in UTF-16 code units. */
  constructor(readonly limit: number) {
    super(
      `an event held more than ${limit} UTF-16 code units in memory (maxEventLength counts its lines from the first data line on, field names and line ends included)`,
    );
  }
}

/** No byte arrived on a stream for longer than the read timeout. */
export class ReadTimeoutError extends Error {
  override readonly name = 'ReadTimeoutError';
  readonly code = 'ERR_EVENTSOURCE_READ_TIMEOUT';
  constructor(readonly timeoutMs: number) {
    super(`no data received for ${timeoutMs} ms`);
  }
}

/** A value that cannot be written to an SSE stream safely (CR, LF or NUL in `id` or `event`). */
export class WireFormatError extends TypeError {
  override readonly name = 'WireFormatError';
  readonly code = 'ERR_EVENTSOURCE_WIRE_FORMAT';
}

/**
 * One line describing an error and its causes: `fetch failed: connect ECONNREFUSED 127.0.0.1:8888`.
 * @param error Anything thrown.
 * @returns The messages of the error and each `cause`, joined with `: `, without repeats.
 */
export function flattenError(error: unknown): string {
  const parts: string[] = [];
  let current: unknown = error;
  for (let depth = 0; current !== undefined && current !== null && depth < 8; depth++) {
    let message: string;
    if (current instanceof AggregateError && current.errors.length > 0) {
      message = current.message || current.errors.map((e) => flattenError(e)).join('; ');
    } else if (current instanceof Error) {
      message = current.message || current.name;
      const code = (current as { code?: unknown }).code;
      if (!message && typeof code === 'string') message = code;
      // OpenSSL's own text is a dump of internal names; say what it means in the common case.
      if (code === 'ERR_SSL_WRONG_VERSION_NUMBER') {
        message =
          'TLS handshake failed (ERR_SSL_WRONG_VERSION_NUMBER): is the server speaking plain HTTP?';
      }
    } else {
      message = String(current);
    }
    if (message && !parts.some((p) => p.includes(message))) parts.push(message);
    current = current instanceof Error ? current.cause : undefined;
  }
  return parts.join(': ').replace(/\s*\n\s*/g, ' ');
}

/** The listener refused an event: the HTTP status it answers, and its message. */
export class PublishError extends Error {
  override readonly name = 'PublishError';
  readonly code = 'ERR_EVENTSOURCE_PUBLISH';
  /**
   * @param status The HTTP status the listener answers (`400`, `404`, `413`, `503`).
   * @param message The message, as in the response body.
   */
  constructor(
    readonly status: number,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}
