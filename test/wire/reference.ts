/**
 * A plain, non-streaming statement of the WHATWG event stream interpretation, for tests to check
 * the streaming parser against: the whole stream is split into lines first, then each line is
 * processed as the spec says, in the spec's own terms (a data buffer with a trailing LF per value).
 * It adds the parser's two documented non-spec rules: the size limit (every line from the event's
 * first data line on, with 1 for each line end, plus the current line) and a starting last event ID.
 * @see https://html.spec.whatwg.org/multipage/server-sent-events.html#event-stream-interpretation
 */
import type { ParsedEvent } from '../../src/wire/parser.js';

/** What the reference reports for one whole stream (`errors` counts the discarded events). */
export interface ReferenceResult {
  events: ParsedEvent[];
  retries: number[];
  comments: string[];
  errors: number;
  lastEventId: string;
}

/**
 * Interprets one complete, decoded stream.
 * @param stream The stream's text, a BOM and all.
 * @param limit The size limit (`maxEventLength`).
 */
export function interpret(stream: string, limit = Infinity): ReferenceResult {
  const result: ReferenceResult = {
    events: [],
    retries: [],
    comments: [],
    errors: 0,
    lastEventId: '',
  };
  // [spec] One leading U+FEFF BYTE ORDER MARK character must be ignored if any are present.
  const text = stream.startsWith('\ufeff') ? stream.slice(1) : stream;
  // [spec] Lines must be separated by a CRLF pair, a single LF or a single CR. What follows the
  // last line end is an incomplete line: it is never processed.
  const lines = text.split(/\r\n|\r|\n/);
  lines.pop();
  let dataBuffer = '';
  let eventType = '';
  let lastEventIdBuffer = '';
  let discarding = false;
  // [non-spec] What the event takes against the limit; 0 while it has no data.
  let size = 0;
  for (const line of lines) {
    if (line === '') {
      // [spec] Dispatch the event: set the last event ID string to the last event ID buffer...
      result.lastEventId = lastEventIdBuffer;
      if (!discarding && dataBuffer !== '') {
        result.events.push({
          event: eventType === '' ? 'message' : eventType,
          // [spec] If the data buffer's last character is a LF, remove it.
          data: dataBuffer.slice(0, -1),
          id: result.lastEventId,
        });
      }
      discarding = false;
      dataBuffer = '';
      eventType = '';
      size = 0;
      continue;
    }
    if (discarding) continue;
    // [non-spec] The limit: what the event takes so far plus the whole line and its line end.
    if (size + line.length + 1 > limit) {
      discarding = true;
      dataBuffer = '';
      size = 0;
      result.errors++;
      continue;
    }
    // Every line counts once the event has data; the first data line starts the count.
    if (dataBuffer !== '') size += line.length + 1;
    if (line.startsWith(':')) {
      result.comments.push(line.slice(1));
      continue;
    }
    const colon = line.indexOf(':');
    const field = colon === -1 ? line : line.slice(0, colon);
    let value = colon === -1 ? '' : line.slice(colon + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    if (field === 'event') eventType = value;
    else if (field === 'data') {
      if (dataBuffer === '') size = line.length + 1;
      dataBuffer += `${value}\n`;
    } else if (field === 'id' && !value.includes('\0')) lastEventIdBuffer = value;
    else if (field === 'retry' && /^[0-9]+$/.test(value)) result.retries.push(Number(value));
  }
  return result;
}
