/**
 * The message in an HTTP error body, for one-line error reports (internal; not part of the API).
 */
import { STATUS_CODES } from 'node:http';

const ENTITIES: Record<string, string> = {
  amp: '&',
  lt: '<',
  gt: '>',
  quot: '"',
  apos: "'",
  nbsp: ' ',
};

/**
 * The server's message on one line: HTML without its tags, a JSON body's `message` or `error`,
 * or the text as it is; the standard status text when nothing is left.
 */
export function serverMessage(status: number, body: string, type: string, isJson: boolean): string {
  let message = body;
  if (/html/i.test(type) || /^\s*</.test(body)) {
    message = body
      .replace(/<(script|style)\b[\s\S]*?<\/\1\s*>/gi, ' ')
      .replace(/<[^>]*>/g, ' ')
      .replace(/&(#\d+|#x[0-9a-f]+|[a-z]+);/gi, (entity: string, name: string) => {
        if (name.startsWith('#')) {
          const code =
            name[1] === 'x' || name[1] === 'X'
              ? parseInt(name.slice(2), 16)
              : Number(name.slice(1));
          return Number.isFinite(code) && code <= 0x10ffff ? String.fromCodePoint(code) : entity;
        }
        return ENTITIES[name.toLowerCase()] ?? entity;
      });
  } else if (isJson) {
    try {
      const parsed = JSON.parse(body) as unknown;
      if (parsed && typeof parsed === 'object') {
        const { message: m, error: e } = parsed as { message?: unknown; error?: unknown };
        if (typeof m === 'string') message = m;
        else if (typeof e === 'string') message = e;
      }
    } catch {
      // Not JSON after all: show the text as it is.
    }
  }
  message = message.replace(/\s+/g, ' ').trim();
  if (message.length > 500) message = `${message.slice(0, 500)}…`;
  return message || STATUS_CODES[status] || 'no message';
}
