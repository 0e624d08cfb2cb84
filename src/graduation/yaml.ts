// A small YAML writer for the bundle's Kubernetes manifests: maps, lists and scalars, with
// comments above keys and list items (a NetworkPolicy names its hosts in comments). Strings
// that could be read as anything but a string (yes, 8080, null, a leading '-') are quoted,
// and quoted strings escape everything outside printable ASCII, so text from an app (a
// description, a command) can never end a line, open a comment or become another key, in
// YAML 1.1 (kubectl's) and 1.2 readers alike.

export type YamlScalar = string | number | boolean | null;
export type YamlValue = YamlScalar | YamlValue[] | YamlMap | Commented;
export interface YamlMap {
  [key: string]: YamlValue | undefined;
}

/** A value with comment lines written above it (above its key, or its list item's dash). */
export class Commented {
  constructor(
    readonly comment: string,
    readonly value: YamlValue,
  ) {}
}

export function commented(comment: string, value: YamlValue): Commented {
  return new Commented(comment, value);
}

/** One document; `header` becomes comment lines at its top. */
export function toYaml(value: YamlValue, header?: string): string {
  const lines: string[] = header ? commentLines(header, '') : [];
  if (value instanceof Commented) {
    lines.push(...commentLines(value.comment, ''));
    value = value.value;
  }
  if (isMap(value) && Object.keys(defined(value)).length > 0) lines.push(...mapLines(value, ''));
  else if (Array.isArray(value) && value.length > 0) lines.push(...listLines(value, ''));
  else lines.push(inline(value));
  return `${lines.join('\n')}\n`;
}

/** Comment lines at an indent: every line break in the text starts a new comment line, and
 * control characters are dropped, so no text can step out of the comment. */
export function commentLines(text: string, indent: string): string[] {
  return text.split(/\r\n|[\r\n\u0085\u2028\u2029]/).map((line) => {
    const clean = line.replace(/[\u0000-\u001f\u007f-\u009f]/g, '').trimEnd();
    return clean === '' ? `${indent}#` : `${indent}# ${clean}`;
  });
}

function mapLines(map: YamlMap, indent: string): string[] {
  const lines: string[] = [];
  for (const [key, raw] of Object.entries(defined(map))) {
    let value = raw;
    if (value instanceof Commented) {
      lines.push(...commentLines(value.comment, indent));
      value = value.value;
    }
    const k = scalar(key);
    if (isMap(value) && Object.keys(defined(value)).length > 0) {
      lines.push(`${indent}${k}:`, ...mapLines(value, `${indent}  `));
    } else if (Array.isArray(value) && value.length > 0) {
      // Lists under a key at the key's own indent, as kubectl prints them.
      lines.push(`${indent}${k}:`, ...listLines(value, indent));
    } else {
      lines.push(`${indent}${k}: ${inline(value)}`);
    }
  }
  return lines;
}

function listLines(list: YamlValue[], indent: string): string[] {
  const lines: string[] = [];
  for (const raw of list) {
    let item = raw;
    if (item instanceof Commented) {
      lines.push(...commentLines(item.comment, indent));
      item = item.value;
    }
    if (isMap(item) && Object.keys(defined(item)).length > 0) {
      // The first key goes on the dash's line, the rest under it.
      const inner = mapLines(item, `${indent}  `);
      const first = inner.findIndex((l) => !l.trimStart().startsWith('#'));
      inner[first] = `${indent}- ${(inner[first] as string).slice(indent.length + 2)}`;
      lines.push(...inner);
    } else if (Array.isArray(item) && item.length > 0) {
      lines.push(`${indent}-`, ...listLines(item, `${indent}  `));
    } else {
      lines.push(`${indent}- ${inline(item)}`);
    }
  }
  return lines;
}

function inline(value: YamlValue | undefined): string {
  if (value instanceof Commented) return inline(value.value);
  if (Array.isArray(value)) return '[]';
  if (isMap(value)) return '{}';
  if (value === undefined || value === null) return 'null';
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) throw new Error(`a manifest number must be finite, got ${value}`);
    return String(value);
  }
  if (typeof value === 'boolean') return String(value);
  return scalar(value);
}

// Words YAML 1.1 reads as booleans or null (kubectl's reader is 1.1-flavoured), in any case.
const RESERVED = /^(y|n|yes|no|true|false|on|off|null|~)$/i;
const PLAIN = /^[A-Za-z_/][A-Za-z0-9_./-]*$/;

/** A string as a plain scalar when it cannot be read as anything else, else double-quoted. */
export function scalar(text: string): string {
  if (PLAIN.test(text) && !RESERVED.test(text)) return text;
  let out = '"';
  for (const ch of text) {
    const code = ch.codePointAt(0) as number;
    if (ch === '"') out += '\\"';
    else if (ch === '\\') out += '\\\\';
    else if (code >= 0x20 && code <= 0x7e) out += ch;
    else if (ch === '\n') out += '\\n';
    else if (ch === '\t') out += '\\t';
    else if (code <= 0xffff) out += `\\u${code.toString(16).padStart(4, '0')}`;
    else out += `\\U${code.toString(16).padStart(8, '0')}`;
  }
  return `${out}"`;
}

function isMap(value: YamlValue | undefined): value is YamlMap {
  return (
    typeof value === 'object' && value !== null && !Array.isArray(value) && !(value instanceof Commented)
  );
}

function defined(map: YamlMap): Record<string, YamlValue> {
  return Object.fromEntries(Object.entries(map).filter(([, v]) => v !== undefined)) as Record<
    string,
    YamlValue
  >;
}
