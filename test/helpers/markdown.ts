/**
 * Finds the fenced code blocks of a Markdown file, with the `<!-- doc-test: ... -->` comment that
 * says how the documentation test treats each (see test/docs/examples.test.ts). No side effects
 * on import.
 */

/** One fenced code block. */
export interface CodeBlock {
  /** The Markdown file, as given to {@link extractCodeBlocks}. */
  readonly file: string;
  /** 1-based line of the opening fence. */
  readonly line: number;
  /** The first word of the info string (`js`, `sh`, ...), lower case; `''` when there is none. */
  readonly lang: string;
  /** The block's text, its indentation (a fence inside a list item) removed, ending with `\n`. */
  readonly code: string;
  /**
   * The text of the `<!-- doc-test: ... -->` comment just before the fence (blank lines between
   * them allowed), trimmed; undefined when there is none.
   */
  readonly directive: string | undefined;
}

const FENCE = /^( {0,3}|\s*)(`{3,}|~{3,})\s*([^`]*)$/;
const DIRECTIVE = /^\s*<!--\s*doc-test:\s*(.*?)\s*-->\s*$/;

/**
 * Extracts every fenced code block (CommonMark: three or more backticks or tildes, closed by at
 * least as many of the same character). Indented code blocks (four spaces, no fence) are not
 * looked for: the documentation does not use them.
 * @param markdown The file's text.
 * @param file A name for the file, copied into each block.
 * @returns The blocks in file order.
 */
export function extractCodeBlocks(markdown: string, file: string): CodeBlock[] {
  const lines = markdown.split(/\r?\n/);
  const blocks: CodeBlock[] = [];
  let directive: string | undefined;
  for (let i = 0; i < lines.length; i++) {
    const text = lines[i] ?? '';
    const directiveMatch = DIRECTIVE.exec(text);
    if (directiveMatch) {
      directive = directiveMatch[1] ?? '';
      continue;
    }
    const open = FENCE.exec(text);
    if (!open) {
      // A directive belongs to the next block only if nothing but blank lines comes between.
      if (text.trim() !== '') directive = undefined;
      continue;
    }
    const indent = (open[1] ?? '').length;
    const fence = open[2] ?? '```';
    const lang = (open[3] ?? '').trim().split(/\s+/)[0]?.toLowerCase() ?? '';
    const body: string[] = [];
    let j = i + 1;
    for (; j < lines.length; j++) {
      const inner = lines[j] ?? '';
      const trimmed = inner.trim();
      if (trimmed.startsWith(fence[0]!.repeat(fence.length)) && /^[`~]+$/.test(trimmed)) break;
      body.push(inner.slice(Math.min(indent, inner.length - inner.trimStart().length)));
    }
    blocks.push({ file, line: i + 1, lang, code: body.join('\n') + '\n', directive });
    directive = undefined;
    i = j;
  }
  return blocks;
}

/** A parsed directive: its kind (first word) and the rest of its text. */
export interface Directive {
  readonly kind: string;
  readonly rest: string;
}

/** Splits a directive's text into its first word and the rest. */
export function parseDirective(text: string): Directive {
  const match = /^(\S+)\s*(.*)$/s.exec(text.trim());
  return { kind: match?.[1] ?? '', rest: match?.[2]?.trim() ?? '' };
}
