// Custom domains that pass for others (issue 20): a label that mixes scripts the way homograph
// attacks do is refused (UTS #39 highly restrictive, what browsers show as punycode), naming
// the label and the scripts found, in every spelling (punycode, upper case, full-width, a
// trailing dot); so is a label of Cyrillic letters that all look Latin under a Latin
// top-level domain. Names in one script, and Japanese, Chinese and Korean mixed with Latin,
// are accepted.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { parseDomain } from '../../src/domain/domains.js';
import { mixedScripts, scriptsOf } from '../../src/domain/mixed-scripts.js';

const where = { domain: 'petri.example.net', apiHost: 'api.example.net' };
const refused = (raw: string, pattern: RegExp) =>
  assert.throws(
    () => parseDomain(raw, where),
    (err: Error) => {
      assert.match(err.message, pattern);
      return true;
    },
    raw,
  );
const MIXED = /has a label that mixes scripts/;

describe('custom domains that pass for others', () => {
  test("a Cyrillic 'а' in a Latin name is refused, naming the label and the scripts found", () => {
    refused(
      'pаypal.com',
      /^domain 'pаypal\.com' has a label that mixes scripts, 'pаypal' \(xn--pypal-4ve\): Latin \(p, y, a, l\) and Cyrillic \('а' U\+0430\)\. .*homograph.*punycode; write each label in one script/,
    );
    refused(
      'www.ехаmple.org',
      /'ехаmple' \(xn--mple-43d3a6i\): Cyrillic \('е' U\+0435, 'х' U\+0445, 'а' U\+0430\) and Latin/,
    );
    // Greek omicron, Armenian օ, an Arabic-Indic digit: each with Latin.
    refused('gοogle.com', /Latin \(g, o, l, e\) and Greek \('ο' U\+03BF\)/);
    refused('gօogle.com', /and Armenian \('օ' U\+0585\)/);
    refused('shop١.com', /Latin \(s, h, o, p\) and Arabic \('١' U\+0661\)/);
  });

  test('every spelling of a mixed name is refused: its punycode, upper case, full width, a trailing dot', () => {
    refused('xn--pypal-4ve.com', /'pаypal' \(xn--pypal-4ve\): Latin .* and Cyrillic/);
    refused('XN--PYPAL-4VE.COM.', MIXED);
    refused('PАYPAL.COM', MIXED);
    refused('ｐаｙｐａｌ.com', MIXED);
    refused('pаypal.com.', MIXED);
    refused('shop.pаypal.example', MIXED);
    // Under the platform's own domain names are refused before anything else.
    refused('pаypal.petri.example.net', /one of Petri's own names/);
  });

  test('a label of Cyrillic letters that all look Latin is refused under a Latin top-level domain', () => {
    refused(
      'аррӏе.com',
      /^domain 'аррӏе\.com' has a label in Cyrillic letters that all look Latin, 'аррӏе' \(xn--80ak6aa92e\): it passes for 'apple'.*under \.com/,
    );
    refused('xn--80ak6aa92e.com', /passes for 'apple'/);
    refused('СОСО.COM', /passes for 'coco'/);
    refused('www.раураӏ.org', /passes for 'paypal'/);
    refused('ѕсоре1.net', /passes for 'scope1'/);
    // Where a Cyrillic name is expected, or with a letter no Latin one looks like, it is fine.
    assert.equal(parseDomain('аррӏе.ru', where).unicode, 'аррӏе.ru');
    assert.equal(parseDomain('аррӏе.рф', where).unicode, 'аррӏе.рф');
    assert.equal(parseDomain('пример.com', where).host, 'xn--e1afmkfd.com');
  });

  test('names in one script, and Latin with Han and kana, Bopomofo or Hangul, are accepted', () => {
    const accepted: [string, string][] = [
      ['bücher.de', 'xn--bcher-kva.de'],
      ['例え.jp', 'xn--r8jz45g.jp'],
      ['παράδειγμα.gr', 'xn--hxajbheg2az3al.gr'],
      ['пример.испытание', 'xn--e1afmkfd.xn--80akhbyknj4f'],
      ['مثال.إختبار', 'xn--mgbh0fb.xn--kgbechtv'],
      ['उदाहरण.परीक्षा', 'xn--p1b6ci4b4b3a.xn--11b5bs3a9aj6g'],
      ['straße.de', 'xn--strae-oqa.de'],
      ['sony123.jp', 'sony123.jp'],
    ];
    for (const [name, host] of accepted) assert.equal(parseDomain(name, where).host, host, name);
    // Latin with Japanese, Chinese (Bopomofo) and Korean in one label.
    for (const name of [
      'ソニーsony.jp',
      'abc中文ㄅ.tw',
      'abc한국어.kr',
      'ひらがなカタカナ漢字.jp',
      'ábc-1.com',
    ]) {
      assert.doesNotThrow(() => parseDomain(name, where), name);
    }
  });

  test('the scripts of a label: Common and Inherited go with any, a writing system counts as one', () => {
    assert.deepEqual(scriptsOf('a'), ['Latin']);
    assert.deepEqual(scriptsOf('1'), []);
    assert.deepEqual(scriptsOf('-'), []);
    // Combining marks: Inherited (a joiner), or those of the scripts they are used with.
    assert.deepEqual(scriptsOf('\u200d'), []);
    assert.ok(scriptsOf('\u0301').includes('Latin'));
    assert.equal(mixedScripts('例え'), undefined);
    assert.equal(mixedScripts('한國'), undefined);
    // Japanese kana with Hangul: no writing system has both.
    assert.deepEqual(
      mixedScripts('カ한')?.scripts.map((s) => s.script),
      ['Katakana', 'Hangul'],
    );
    assert.deepEqual(
      mixedScripts('abcカ한')?.scripts.map((s) => s.script),
      ['Latin', 'Katakana', 'Hangul'],
    );
    assert.ok(mixedScripts('abcα'));
  });

  test('every letter, mark and digit this Node.js knows is in a script of the list', () => {
    const missing: string[] = [];
    for (let cp = 0; cp <= 0x10ffff; cp++) {
      if (cp >= 0xd800 && cp <= 0xdfff) continue;
      const char = String.fromCodePoint(cp);
      if (!/[\p{L}\p{M}\p{Nd}]/u.test(char)) continue;
      if (scriptsOf(char).some((s) => s.startsWith('Unknown'))) missing.push(cp.toString(16));
    }
    assert.deepEqual(missing.slice(0, 20), []);
  });
});
