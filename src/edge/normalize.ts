/**
 * Turning what a request carries into the forms the attack rules read. Attackers hide a
 * payload behind encodings a backend may undo (double percent-encoding, %u, overlong UTF-8,
 * HTML entities, JavaScript escapes, full-width Unicode, comments and quotes inside words);
 * the shield undoes them all first, so one rule sees every disguise of its attack.
 */

/** What normalisation noticed on the way: evasion attempts worth a score of their own. */
export interface Decoding {
  /** The value as it came. */
  raw: string;
  /** The value after every decoding and NFKC, case kept (base64 needs it). */
  decoded: string;
  /** The value after every decoding, NFKC, lower case, without NUL bytes. */
  text: string;
  /** `text` with comments, quotes inside words, backslashes and shell tricks taken out, whitespace collapsed. */
  compact: string;
  /** The value was percent-encoded more than once. */
  multiEncoded: boolean;
  /** An overlong UTF-8 sequence or %u escape was used. */
  overlong: boolean;
  /** A NUL byte, or a control character other than tab/CR/LF. */
  nul: boolean;
  control: boolean;
  /** Percent-decoding met bytes that are not UTF-8. */
  badUtf8: boolean;
}

const HEX = /^[0-9a-fA-F]{2}$/;

// Overlong UTF-8 forms of the characters traversal and injection need; %c0%af is "/".
const OVERLONG: Record<string, string> = {
  'c0ae': '.', 'c0af': '/', 'c0 2f': '/', 'c19c': '\\', 'c0bc': '<', 'c0be': '>', 'c0a7': "'", 'c0a2': '"', 'c080': '\0',
  'e080ae': '.', 'e080af': '/', 'e0819c': '\\', 'f08080ae': '.', 'f08080af': '/',
};

/**
 * Percent-decode once, tolerating broken escapes (kept as they are). Returns undefined when
 * nothing was encoded, so callers stop looping.
 */
function percentDecodeOnce(s: string, flags: { overlong: boolean; badUtf8: boolean }, plusIsSpace: boolean): string | undefined {
  if (!s.includes('%') && !(plusIsSpace && s.includes('+'))) return undefined;
  let changed = false;
  const bytes: number[] = [];
  let out = '';
  const flush = () => {
    if (bytes.length === 0) return;
    const buf = Buffer.from(bytes);
    const hex = buf.toString('hex');
    const over = OVERLONG[hex];
    if (over !== undefined) {
      flags.overlong = true;
      out += over;
    } else {
      const text = buf.toString('utf8');
      if (text.includes('\ufffd')) {
        flags.badUtf8 = true;
        // Bit-stripped bytes: some backends drop the high bit (0xbc becomes "<").
        out += String.fromCharCode(...bytes.map((b) => (b >= 0x80 ? b & 0x7f : b)));
      } else out += text;
    }
    bytes.length = 0;
  };
  for (let i = 0; i < s.length; i++) {
    const c = s[i]!;
    if (c === '%') {
      const two = s.slice(i + 1, i + 3);
      if (HEX.test(two)) {
        bytes.push(parseInt(two, 16));
        i += 2;
        changed = true;
        continue;
      }
      if ((s[i + 1] === 'u' || s[i + 1] === 'U') && /^[0-9a-fA-F]{4}$/.test(s.slice(i + 2, i + 6))) {
        flush();
        out += String.fromCharCode(parseInt(s.slice(i + 2, i + 6), 16));
        flags.overlong = true;
        i += 5;
        changed = true;
        continue;
      }
    }
    flush();
    if (c === '+' && plusIsSpace) {
      out += ' ';
      changed = true;
    } else out += c;
  }
  flush();
  return changed ? out : undefined;
}

const NAMED_ENTITIES: Record<string, string> = {
  lt: '<', gt: '>', quot: '"', apos: "'", amp: '&', nbsp: ' ', lpar: '(', rpar: ')', lbrace: '{', rbrace: '}', lbrack: '[', rbrack: ']',
  colon: ':', semi: ';', sol: '/', bsol: '\\', newline: '\n', tab: '\t', excl: '!', num: '#', dollar: '$', percnt: '%', comma: ',',
  period: '.', equals: '=', grave: '`', quest: '?', commat: '@', lowbar: '_', vert: '|', verbar: '|', ast: '*', plus: '+', hyphen: '-',
};

const ENTITY = new RegExp(`&(#[xX][0-9a-fA-F]{1,6}|#\\d{1,7}|${Object.keys(NAMED_ENTITIES).sort((a, b) => b.length - a.length).join('|')});?`, 'gi');

function decodeEntities(s: string): string {
  if (!s.includes('&')) return s;
  return s.replace(ENTITY, (m, body: string) => {
    if (body[0] === '#') {
      const code = body[1] === 'x' || body[1] === 'X' ? parseInt(body.slice(2), 16) : parseInt(body.slice(1), 10);
      return code > 0 && code <= 0x10ffff ? String.fromCodePoint(code) : m;
    }
    return NAMED_ENTITIES[body.toLowerCase()] ?? m;
  });
}

/** JavaScript/C/CSS escapes: \x3c, \u003c, \u{3c}, \074, CSS \3c. */
function decodeBackslashEscapes(s: string): string {
  if (!s.includes('\\')) return s;
  return s
    .replace(/\\u\{([0-9a-fA-F]{1,6})\}/g, (m, h: string) => safeCodePoint(parseInt(h, 16), m))
    .replace(/\\u([0-9a-fA-F]{4})/g, (_m, h: string) => String.fromCharCode(parseInt(h, 16)))
    .replace(/\\x([0-9a-fA-F]{2})/g, (_m, h: string) => {
      const b = parseInt(h, 16);
      return String.fromCharCode(b >= 0x80 ? b & 0x7f : b);
    });
}

function safeCodePoint(code: number, fallback: string): string {
  return code > 0 && code <= 0x10ffff ? String.fromCodePoint(code) : fallback;
}

// Full-width and other look-alikes NFKC does not fold into ASCII.
const LOOKALIKES: Record<string, string> = { '\u2044': '/', '\u2215': '/', '\u29f8': '/', '\u2216': '\\', '\u29f9': '\\', '\u2024': '.', '\u02bc': "'", '\u2018': "'", '\u2019': "'", '\u201c': '"', '\u201d': '"', '\u00ab': '<', '\u00bb': '>', '\u2039': '<', '\u203a': '>', '\uff1c': '<', '\uff1e': '>' };
const LOOKALIKE_RE = new RegExp(`[${Object.keys(LOOKALIKES).join('')}]`, 'g');

// UTF-7 as old browsers read it: +ADw- is "<".
function decodeUtf7(s: string): string {
  if (!/\+[A-Za-z0-9+/]{2,}-?/.test(s)) return s;
  return s.replace(/\+([A-Za-z0-9+/]{2,})-?/g, (m, b64: string) => {
    const bytes = Buffer.from(b64, 'base64');
    if (bytes.length < 2) return m;
    let out = '';
    for (let i = 0; i + 1 < bytes.length; i += 2) out += String.fromCharCode((bytes[i]! << 8) | bytes[i + 1]!);
    return /^[\x20-\x7e]+$/.test(out) ? out : m;
  });
}

/**
 * The "compact" form: what a shell, a SQL parser or a PHP interpreter would still run after the
 * attacker's noise is gone. Comments, quote pairs inside words (c'a't), backslashes (c\at),
 * $IFS and ${IFS}, empty variables ($@) and runs of whitespace.
 */
function compactForm(t: string): string {
  return t
    .replace(/\/\*!\d*/g, ' ') // MySQL executable comments: the content runs
    .replace(/\/\*[\s\S]*?(\*\/|$)/g, ' ')
    .replace(/\$\{ifs\}|\$ifs\b|\$\{ifs%\?\?\}/g, ' ')
    .replace(/\$[@*]|\$\{[@*]?\}/g, '')
    // Inside a word, $$ and an unset $variable vanish in a shell: una$$me, uname$u.
    .replace(/(?<=[a-z])\$(?:\$|[a-z_]\w{0,2}\b)/g, '')
    .replace(/(\w)(?:''|"")(?=\w)/g, '$1')
    .replace(/(\w)['"](\w+)['"](?=\w|\s|$)/g, '$1$2')
    .replace(/(^|\s)['"](\w+)['"](?=\w)/g, '$1$2')
    .replace(/^(['"])(.*)\1$/, '$2')
    .replace(/\\(?=[a-z/.])/g, '')
    .replace(/\s+/g, ' ')
    .trim();
}

/**
 * Decode everything, repeatedly, as far as any backend might. `plusIsSpace` for values taken
 * from a query string or a form body (where the first round reads "+" as a space).
 */
export function decode(raw: string, plusIsSpace = false): Decoding {
  const flags = { overlong: false, badUtf8: false };
  let s = raw.includes('+') && /\+[A-Za-z0-9+/]{2,}-/.test(raw) ? decodeUtf7(raw) : raw;
  let rounds = 0;
  for (; rounds < 4; rounds++) {
    const next = percentDecodeOnce(s, flags, plusIsSpace && rounds === 0);
    if (next === undefined) break;
    s = next;
  }
  // A second round that still decoded means the value came encoded twice (or more).
  const multiEncoded = rounds >= 2 && /%[0-9a-f]{2}/i.test(raw) && /%25[0-9a-f]{2}/i.test(raw);
  if (/\+AD[w4-]/.test(s)) s = decodeUtf7(s);
  s = decodeEntities(s);
  s = decodeBackslashEscapes(s);
  s = decodeEntities(s);
  // 0x2e0x2e0x2f: hex spelled out, as some path handlers accept.
  if (s.includes('0x')) s = s.replace(/0x(2e|2f|5c)/gi, (_m, h: string) => String.fromCharCode(parseInt(h, 16)));
  let nul = false;
  let control = false;
  if (/[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]/.test(s)) {
    nul = s.includes('\0');
    control = /[\x01-\x08\x0b\x0c\x0e-\x1f\x7f]/.test(s);
    s = s.replace(/\0/g, '');
  }
  if (/[^\x00-\x7f]/.test(s)) s = s.normalize('NFKC').replace(LOOKALIKE_RE, (c) => LOOKALIKES[c]!);
  const text = s.toLowerCase();
  return { raw, decoded: s, text, compact: compactForm(text), multiEncoded, overlong: flags.overlong, nul, control, badUtf8: flags.badUtf8 };
}

/** Base64 look-alike tokens, decoded at every alignment: gadget names hide in them. */
export function base64Payloads(text: string): string[] {
  const out: string[] = [];
  const tokens = text.match(/[A-Za-z0-9+/_-]{8,}={0,2}/g);
  if (!tokens) return out;
  for (const token of tokens.slice(0, 8)) {
    if (!/[A-Z]/.test(token) || !/[a-z]/.test(token)) continue;
    const clean = token.replace(/-/g, '+').replace(/_/g, '/').replace(/=+$/, '');
    for (let shift = 0; shift < 4; shift++) {
      // A substring of a longer base64 text starts mid-group; prefixing realigns it.
      const aligned = 'A'.repeat(shift) + clean;
      const decoded = Buffer.from(aligned, 'base64').toString('latin1').slice(shift === 0 ? 0 : 1);
      const printable = decoded.replace(/[^\x20-\x7e]/g, '');
      if (printable.length >= 6 && printable.length >= decoded.length * 0.8) out.push(printable.toLowerCase());
    }
  }
  return out;
}
