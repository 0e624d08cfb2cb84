// What data.md and HANDOFF.md share: text from an app made safe to put in Markdown, sizes,
// and what each data class means.
import type { DataClass } from './input.js';

export const DATA_CLASS_WORDS: Record<DataClass, string> = {
  none: 'it keeps no data about people',
  anonymous: 'data about people that cannot be traced back to anyone',
  personal: 'personal data: it can identify people',
  sensitive: 'sensitive personal data (health, beliefs, finances and the like)',
};

/** Text from an app (a description, an error) on one line, with nothing Markdown or a viewer
 * would take for markup or HTML. */
export function mdText(text: string): string {
  return text
    .replace(/[\u0000-\u001f\u007f-\u009f\u2028\u2029]+/g, ' ')
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/([\\`*_[\]|])/g, '\\$1')
    .trim();
}

/** Text from an app inside `code`: one line, and no run of backticks to end it early (the
 * fence is one backtick longer than the longest run in the text, as CommonMark allows). */
export function mdCode(text: string): string {
  const line = text.replace(/[\u0000-\u001f\u007f-\u009f\u2028\u2029]+/g, ' ');
  const longest = Math.max(0, ...(line.match(/`+/g) ?? []).map((run) => run.length));
  const fence = '`'.repeat(longest + 1);
  return `${fence}${line.startsWith('`') || line.endsWith('`') ? ` ${line} ` : line}${fence}`;
}

/** Markdown (a code span) for a cell of a GFM table: a '|' splits cells even inside a code
 * span unless a backslash precedes it, and the table takes that backslash away before the
 * span is read (so every '|' gets one, even one after a backslash of the text's own). */
export function mdCell(markdown: string): string {
  return markdown.replace(/\|/g, '\\|');
}

export function formatBytes(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let value = bytes / 1024;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return `${value.toFixed(1)} ${units[unit]}`;
}
