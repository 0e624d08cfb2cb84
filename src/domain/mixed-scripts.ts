// Whether a domain label mixes writing systems the way homograph attacks do ("pаypal" with a
// Cyrillic 'а'): UTS #39's "highly restrictive" level, the one browsers use to decide whether
// to show a name in Unicode or as punycode. A label's letters come from one script (Common
// characters, digits and the hyphen, and Inherited ones, combining marks, go with any), or
// from Latin with Han and Hiragana and Katakana (Japanese), with Han and Bopomofo (Chinese),
// or with Han and Hangul (Korean). And a label in Cyrillic letters that all look Latin under
// a Latin top-level domain ('аррӏе.com') is one browsers show as punycode too.

/** Unicode's scripts (long names; the ones this Node.js does not know are left out). Every
 * letter, mark and digit is in one of them (test/domains/validation.test.ts checks). */
const SCRIPT_NAMES = `Adlam Ahom Anatolian_Hieroglyphs Arabic Armenian Avestan Balinese Bamum Bassa_Vah Batak
  Bengali Beria_Erfe Bhaiksuki Bopomofo Brahmi Braille Buginese Buhid Canadian_Aboriginal Carian
  Caucasian_Albanian Chakma Cham Cherokee Chorasmian Coptic Cuneiform Cypriot Cypro_Minoan
  Cyrillic Deseret Devanagari Dives_Akuru Dogra Duployan Egyptian_Hieroglyphs Elbasan Elymaic
  Ethiopic Garay Georgian Glagolitic Gothic Grantha Greek Gujarati Gunjala_Gondi Gurmukhi
  Gurung_Khema Han Hangul Hanifi_Rohingya Hanunoo Hatran Hebrew Hiragana Imperial_Aramaic
  Inscriptional_Pahlavi Inscriptional_Parthian Javanese Kaithi Kannada Katakana Kawi Kayah_Li
  Kharoshthi Khitan_Small_Script Khmer Khojki Khudawadi Kirat_Rai Lao Latin Lepcha Limbu Linear_A
  Linear_B Lisu Lycian Lydian Mahajani Makasar Malayalam Mandaic Manichaean Marchen
  Masaram_Gondi Medefaidrin Meetei_Mayek Mende_Kikakui Meroitic_Cursive Meroitic_Hieroglyphs Miao
  Modi Mongolian Mro Multani Myanmar Nabataean Nag_Mundari Nandinagari New_Tai_Lue Newa Nko
  Nushu Nyiakeng_Puachue_Hmong Ogham Ol_Chiki Ol_Onal Old_Hungarian Old_Italic
  Old_North_Arabian Old_Permic Old_Persian Old_Sogdian Old_South_Arabian Old_Turkic Old_Uyghur
  Oriya Osage Osmanya Pahawh_Hmong Palmyrene Pau_Cin_Hau Phags_Pa Phoenician Psalter_Pahlavi
  Rejang Runic Samaritan Saurashtra Sharada Shavian Siddham Sidetic SignWriting Sinhala Sogdian
  Sora_Sompeng Soyombo Sundanese Sunuwar Syloti_Nagri Syriac Tagalog Tagbanwa Tai_Le Tai_Tham
  Tai_Viet Tai_Yo Takri Tamil Tangsa Tangut Telugu Thaana Thai Tibetan Tifinagh Tirhuta Todhri
  Tolong_Siki Toto Tulu_Tigalari Ugaritic Vai Vithkuqi Wancho Warang_Citi Yezidi Yi
  Zanabazar_Square`
  .split(/\s+/)
  .flatMap((name) => {
    try {
      return [{ name, re: new RegExp(`^\\p{Script_Extensions=${name}}$`, 'u') }];
    } catch {
      return [];
    }
  });

/** Common and Inherited characters: each goes with any script. */
const ANY_SCRIPT = /^[\p{Script_Extensions=Common}\p{Script_Extensions=Inherited}]$/u;

/** The scripts a character is written in (its Script_Extensions), empty for Common and
 * Inherited ones. One no known script claims is a script of its own. */
export function scriptsOf(char: string): string[] {
  if (ANY_SCRIPT.test(char)) return [];
  const found = SCRIPT_NAMES.filter((s) => s.re.test(char)).map((s) => s.name);
  return found.length > 0 ? found : [`Unknown U+${codePoint(char)}`];
}

/** The writing systems a script belongs to besides itself (UTS #39, augmented script sets):
 * Japanese is Han, Hiragana and Katakana, Chinese Han and Bopomofo, Korean Han and Hangul. */
const WRITING: Record<string, string[]> = {
  Han: ['Japanese', 'Chinese', 'Korean'],
  Hiragana: ['Japanese'],
  Katakana: ['Japanese'],
  Bopomofo: ['Chinese'],
  Hangul: ['Korean'],
};

/** Besides one script, Latin may go with these (UTS #39 highly restrictive). */
const WITH_LATIN = [
  ['Latin', 'Han', 'Hiragana', 'Katakana'],
  ['Latin', 'Han', 'Bopomofo'],
  ['Latin', 'Han', 'Hangul'],
];

export interface MixedScripts {
  /** Each script found, with its characters in the label (in order, once each). */
  scripts: { script: string; chars: string[] }[];
}

/** Undefined when the label (in Unicode) is highly restrictive; else the scripts it mixes. */
export function mixedScripts(label: string): MixedScripts | undefined {
  const sets = [...label]
    .map((char) => ({ char, scripts: scriptsOf(char) }))
    .filter((c) => c.scripts.length > 0);
  if (sets.length === 0) return undefined;
  // One script (a writing system counts as one): some script every character shares.
  const augmented = (scripts: string[]) => scripts.flatMap((s) => [s, ...(WRITING[s] ?? [])]);
  let shared = augmented(sets[0]!.scripts);
  for (const { scripts } of sets) {
    const mine = augmented(scripts);
    shared = shared.filter((s) => mine.includes(s));
  }
  if (shared.length > 0) return undefined;
  if (WITH_LATIN.some((allowed) => sets.every(({ scripts }) => scripts.some((s) => allowed.includes(s))))) {
    return undefined;
  }
  // Each character under its first script: what a person would call it.
  const byScript = new Map<string, string[]>();
  for (const { char, scripts } of sets) {
    const script = scripts[0]!;
    const chars = byScript.get(script) ?? [];
    if (!chars.includes(char)) chars.push(char);
    byScript.set(script, chars);
  }
  return { scripts: [...byScript].map(([script, chars]) => ({ script, chars })) };
}

/** Cyrillic letters that look like Latin ones, and the letter each passes for (Chromium's
 * list: a name made of them alone is shown as punycode under a Latin top-level domain). */
const LATIN_ALIKE_CYRILLIC: Record<string, string> = {
  а: 'a',
  с: 'c',
  ԁ: 'd',
  е: 'e',
  һ: 'h',
  і: 'i',
  ј: 'j',
  ӏ: 'l',
  о: 'o',
  р: 'p',
  ԛ: 'q',
  ѕ: 's',
  ԝ: 'w',
  х: 'x',
  у: 'y',
  ъ: 'b',
  ь: 'b',
  ҽ: 'e',
  п: 'n',
  г: 'r',
  ѵ: 'v',
  ѡ: 'w',
};
/** Top-level domains where a Cyrillic name is expected (Chromium's list). */
const CYRILLIC_TLDS = new Set(['bg', 'by', 'kz', 'pyc', 'ru', 'su', 'ua', 'uz']);

/** The Latin name a label passes for when it is written only in Cyrillic letters that look
 * Latin ('аррӏе': 'apple'), under a top-level domain in Latin letters other than a Cyrillic
 * country's (UTS #39 whole-script confusables, as browsers judge them); else undefined. */
export function latinLookalike(label: string, tld: string): string | undefined {
  if (!/^[a-z0-9-]+$/.test(tld) || CYRILLIC_TLDS.has(tld)) return undefined;
  let latin = '';
  let cyrillic = false;
  for (const char of label) {
    const alike = LATIN_ALIKE_CYRILLIC[char];
    if (alike !== undefined) {
      latin += alike;
      cyrillic = true;
    } else if (/^[0-9-]$/.test(char)) latin += char;
    else return undefined;
  }
  return cyrillic ? latin : undefined;
}

/** 'Latin (p, y, a, l) and Cyrillic ('а' U+0430)': the scripts as a message shows them,
 * characters outside ASCII with their code points (they look like others). */
export function describeScripts(mixed: MixedScripts): string {
  const one = ({ script, chars }: MixedScripts['scripts'][number]) => {
    const shown = chars.slice(0, 6).map((c) => (/^[\x20-\x7e]$/.test(c) ? c : `'${c}' U+${codePoint(c)}`));
    return `${script.replaceAll('_', ' ')} (${shown.join(', ')}${chars.length > 6 ? ' ...' : ''})`;
  };
  const parts = mixed.scripts.map(one);
  return parts.length > 1 ? `${parts.slice(0, -1).join(', ')} and ${parts.at(-1)}` : (parts[0] ?? '');
}

function codePoint(char: string): string {
  return char.codePointAt(0)!.toString(16).toUpperCase().padStart(4, '0');
}
