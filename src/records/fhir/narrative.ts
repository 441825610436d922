/**
 * Safety of FHIR narrative XHTML (Narrative.div and any other xhtml element): the value must be a
 * well-formed XHTML fragment, rooted at <div xmlns="http://www.w3.org/1999/xhtml">, holding only the
 * basic formatting elements and attributes FHIR allows (txt-1) and some text (txt-2). Clients render
 * narratives as HTML, so anything that could run script — script or style elements, event handler
 * attributes, javascript:/data: URLs, markup that an HTML parser reads differently from an XML one —
 * is refused, not cleaned: the record keeps exactly what was sent or nothing.
 *
 * A small tokenizer rather than regular expressions over the whole text: one linear pass, and every
 * tag, attribute and entity is seen exactly as a parser sees it.
 */

import { isWellFormedText } from './json-rules.js';

export const XHTML_NAMESPACE = 'http://www.w3.org/1999/xhtml';

/** The elements of HTML 4 chapters 7–11 and 15 that FHIR's validator accepts; no head, body, forms, frames, objects or scripts. */
const ELEMENTS = new Set([
  'a', 'abbr', 'acronym', 'address', 'b', 'bdo', 'big', 'blockquote', 'br', 'caption', 'cite', 'code', 'col', 'colgroup', 'dd', 'dfn', 'div', 'dl', 'dt', 'em',
  'h1', 'h2', 'h3', 'h4', 'h5', 'h6', 'hr', 'i', 'img', 'kbd', 'li', 'ol', 'p', 'pre', 'q', 'samp', 'small', 'span', 'strong', 'sub', 'sup',
  'table', 'tbody', 'td', 'tfoot', 'th', 'thead', 'tr', 'tt', 'ul', 'var',
]);

const GLOBAL_ATTRIBUTES = new Set(['id', 'class', 'style', 'title', 'lang', 'xml:lang', 'dir', 'xmlns']);
const CELL = ['colspan', 'rowspan', 'headers', 'scope', 'abbr', 'axis', 'align', 'valign', 'char', 'charoff', 'width', 'height'];
const ROWS = ['align', 'valign', 'char', 'charoff'];
const COLUMNS = ['span', 'width', 'align', 'valign', 'char', 'charoff'];
/**
 * Attributes beyond the global ones, per element. `name` only on <a> (a named anchor): on <img> it
 * would shadow document properties in the page that renders the narrative (DOM clobbering).
 */
const ELEMENT_ATTRIBUTES: ReadonlyMap<string, ReadonlySet<string>> = new Map(
  Object.entries({
    a: ['href', 'name'],
    img: ['src', 'alt', 'width', 'height'],
    table: ['summary', 'width', 'border', 'frame', 'rules', 'cellpadding', 'cellspacing'],
    td: CELL,
    th: CELL,
    tr: ROWS,
    thead: ROWS,
    tbody: ROWS,
    tfoot: ROWS,
    col: COLUMNS,
    colgroup: COLUMNS,
    q: ['cite'],
    blockquote: ['cite'],
  }).map(([element, attributes]) => [element, new Set(attributes)]),
);

/** Elements HTML parses as empty: a bare <br> is not XML, so they close at once (<br/> or <br></br>). */
const VOID_ELEMENTS = new Set(['br', 'hr', 'img', 'col']);

/** URL schemes allowed per attribute; relative references (Binary/1, #contained) need none. */
const URL_SCHEMES: ReadonlyMap<string, ReadonlySet<string>> = new Map([
  ['href', new Set(['http', 'https', 'mailto', 'tel'])],
  // Images load without a click: https only (no mixed content). data: is refused: FHIR does not clearly allow it.
  ['src', new Set(['https'])],
  ['cite', new Set(['http', 'https'])],
]);

/** Browsers drop these from a URL before reading its scheme ("java\tscript:" runs), so they are removed before the check. */
const URL_IGNORED = /[\u0000-\u0020\u007f-\u009f\u00ad\u061c\u180e\u200b-\u200f\u2028-\u202e\u2060-\u206f\ufeff]/g;

/** CSS that can fetch, run or hide: url(), IE expressions and behaviors, -moz-binding, @import, escapes and comments that split keywords. */
const UNSAFE_STYLE = /url\s*\(|image-set|expression|behavio(?:u)?r|binding|@import|javascript|vbscript|\\|\/\*/i;

/** Not characters of an XML 1.0 document (tab, LF and CR are); lone surrogates are checked apart. */
const NOT_XML_CHAR = /[\u0000-\u0008\u000b\u000c\u000e-\u001f\ufffe\uffff]/;

const NAME = /[A-Za-z_][A-Za-z0-9_.:-]*/y;
const SPACE = /[ \t\r\n]*/y;
const ENTITY = /&(?:#([0-9]{1,7})|#x([0-9A-Fa-f]{1,6})|(lt|gt|amp|quot|apos));/y;
const PREDEFINED: Readonly<Record<string, string>> = { lt: '<', gt: '>', amp: '&', quot: '"', apos: "'" };

class Unsafe extends Error {}

/** Why `div` is not a safe FHIR narrative, or undefined when it is one. */
export function narrativeProblem(div: string): string | undefined {
  try {
    new Tokenizer(div).run();
    return undefined;
  } catch (err) {
    if (err instanceof Unsafe) return err.message;
    throw err;
  }
}

class Tokenizer {
  private pos = 0;
  private readonly open: string[] = [];
  private rootClosed = false;
  private hasContent = false;

  constructor(private readonly text: string) {}

  run(): void {
    if (NOT_XML_CHAR.test(this.text) || !isWellFormedText(this.text)) fail('contains a character XML does not allow');
    this.skipSpace();
    if (!this.text.startsWith('<div', this.pos)) fail(`must be a single <div xmlns="${XHTML_NAMESPACE}"> element`);
    while (this.pos < this.text.length) {
      const lt = this.text.indexOf('<', this.pos);
      const end = lt === -1 ? this.text.length : lt;
      if (end > this.pos) this.textRun(this.text.slice(this.pos, end));
      this.pos = end;
      if (lt === -1) break;
      if (this.text.startsWith('<!--', lt)) this.comment();
      else if (this.text.startsWith('</', lt)) this.endTag();
      else if (this.text[lt + 1] === '!' || this.text[lt + 1] === '?') fail('DOCTYPE, CDATA sections and processing instructions are not allowed');
      else this.startTag();
    }
    const unclosed = this.open.at(-1);
    if (unclosed) fail(`<${unclosed}> is not closed`);
    if (!this.hasContent) fail('must have some non-whitespace content (txt-2)');
  }

  private textRun(raw: string): void {
    const blank = raw.trim() === '';
    if (this.open.length === 0) {
      if (!blank) fail(`has text outside the root <div>`);
      return;
    }
    if (raw.includes(']]>')) fail('"]]>" must be written "]]&gt;"');
    decodeEntities(raw);
    if (!blank) this.hasContent = true;
  }

  /**
   * A comment only if HTML and XML agree on where it ends: with "<" or ">" inside ("<!-->", "--!>")
   * an HTML parser can end it early and render what XML reads as commented out. Nor server-side
   * include directives (<!--#exec …-->) or conditional comments (<!--[if IE]>): comments that act.
   */
  private comment(): void {
    if (this.open.length === 0) fail('has a comment outside the root <div>');
    const start = this.pos + 4;
    const end = this.text.indexOf('-->', start);
    if (end === -1) fail('has an unterminated comment');
    const body = this.text.slice(start, end);
    if (body.includes('--') || body.endsWith('-')) fail('has "--" inside a comment');
    if (/[<>]/.test(body)) fail('has "<" or ">" inside a comment (browsers may end it early)');
    if (/^\s*[#[]/.test(body)) fail('has a comment that is a directive (<!--#…--> or <!--[if …]>)');
    this.pos = end + 3;
  }

  private endTag(): void {
    this.pos += 2;
    const name = this.name('a closing tag');
    this.skipSpace();
    if (this.text[this.pos] !== '>') fail(`has a malformed closing tag </${name}`);
    this.pos++;
    const expected = this.open.pop();
    if (expected !== name) fail(expected ? `closes <${expected}> with </${name}>` : `has </${name}> without an opening tag`);
    if (this.open.length === 0) this.rootClosed = true;
  }

  private startTag(): void {
    this.pos++;
    const name = this.name('a tag');
    if (this.rootClosed) fail('has content after the root </div>');
    const isRoot = this.open.length === 0;
    if (isRoot && name !== 'div') fail(`must be a single <div xmlns="${XHTML_NAMESPACE}"> element`);
    if (!ELEMENTS.has(name)) fail(`has <${name}>, which a narrative may not contain`);
    const seen = new Set<string>();
    let selfClosing = false;
    for (;;) {
      const spaced = this.skipSpace();
      const c = this.text[this.pos];
      if (c === '>') {
        this.pos++;
        break;
      }
      if (c === '/' && this.text[this.pos + 1] === '>') {
        this.pos += 2;
        selfClosing = true;
        break;
      }
      if (c === undefined) fail(`has an unterminated <${name}> tag`);
      if (!spaced) fail(`has a malformed <${name}> tag`);
      const attribute = this.name(`an attribute of <${name}>`);
      if (seen.has(attribute)) fail(`repeats the attribute ${attribute} on <${name}>`);
      seen.add(attribute);
      this.skipSpace();
      if (this.text[this.pos] !== '=') fail(`has the attribute ${attribute} on <${name}> without a quoted value`);
      this.pos++;
      this.skipSpace();
      const quote = this.text[this.pos];
      if (quote !== '"' && quote !== "'") fail(`has the attribute ${attribute} on <${name}> without a quoted value`);
      const close = this.text.indexOf(quote, this.pos + 1);
      if (close === -1) fail(`has an unterminated value of ${attribute} on <${name}>`);
      const raw = this.text.slice(this.pos + 1, close);
      this.pos = close + 1;
      if (raw.includes('<')) fail(`has "<" in the value of ${attribute} on <${name}>`);
      checkAttribute(name, attribute, decodeEntities(raw));
    }
    if (isRoot && !seen.has('xmlns')) fail(`must declare xmlns="${XHTML_NAMESPACE}" on its root <div>`);
    if (name === 'img') this.hasContent = true;
    // <p/> is fine: HTML reads it as an opening tag, which changes layout but lets nothing new in.
    if (!selfClosing && VOID_ELEMENTS.has(name)) {
      // <br></br> is fine XML; a bare <br> is not.
      if (!this.text.startsWith(`</${name}>`, this.pos)) fail(`has <${name}> without closing it (write <${name}/>)`);
      this.pos += name.length + 3;
    } else if (!selfClosing) {
      this.open.push(name);
    } else if (isRoot) {
      this.rootClosed = true;
    }
  }

  private name(what: string): string {
    NAME.lastIndex = this.pos;
    const match = NAME.exec(this.text);
    if (!match) fail(`has a malformed ${what} near "${this.text.slice(this.pos - 1, this.pos + 10)}"`);
    this.pos += match[0].length;
    return match[0];
  }

  /** Skips XML whitespace; true if there was some. */
  private skipSpace(): boolean {
    SPACE.lastIndex = this.pos;
    const skipped = SPACE.exec(this.text)?.[0].length ?? 0;
    this.pos += skipped;
    return skipped > 0;
  }
}

function checkAttribute(element: string, attribute: string, value: string): void {
  if (/^on/i.test(attribute)) fail(`has the event handler ${attribute} on <${element}>`);
  if (!GLOBAL_ATTRIBUTES.has(attribute) && !ELEMENT_ATTRIBUTES.get(element)?.has(attribute)) fail(`has the attribute ${attribute} on <${element}>, which a narrative may not use`);
  if (attribute === 'xmlns' && value !== XHTML_NAMESPACE) fail(`declares xmlns="${value.slice(0, 80)}"; only ${XHTML_NAMESPACE} is allowed`);
  if (attribute === 'style' && UNSAFE_STYLE.test(value)) fail(`has a style on <${element}> that could load or run something`);
  const schemes = URL_SCHEMES.get(attribute);
  if (schemes) {
    const scheme = /^([^/?#]*?):/.exec(value.replace(URL_IGNORED, ''))?.[1];
    if (scheme !== undefined && !schemes.has(scheme.toLowerCase())) {
      fail(`has ${attribute}="${scheme.slice(0, 40)}:…" on <${element}>; allowed: ${[...schemes].map((s) => `${s}:`).join(', ')} or a relative reference`);
    }
  }
}

/** The text with its entity references replaced; throws on "&" that does not start one of XML's own or a numeric one. */
function decodeEntities(raw: string): string {
  let amp = raw.indexOf('&');
  if (amp === -1) return raw;
  let out = '';
  let from = 0;
  while (amp !== -1) {
    ENTITY.lastIndex = amp;
    const match = ENTITY.exec(raw);
    if (!match) {
      const name = /^&[A-Za-z0-9#]*;?/.exec(raw.slice(amp, amp + 40))?.[0] ?? '&';
      fail(name.length > 1 ? `uses the entity ${name}, which XML does not define (write the character itself or &#NNN;)` : 'has a bare "&" (write &amp;)');
    }
    const [whole, decimal, hex, named] = match;
    const codePoint = decimal !== undefined ? Number(decimal) : hex !== undefined ? Number.parseInt(hex, 16) : undefined;
    if (codePoint !== undefined && !isXmlChar(codePoint)) fail(`has ${whole}, which is not an XML character`);
    out += raw.slice(from, amp) + (codePoint !== undefined ? String.fromCodePoint(codePoint) : PREDEFINED[named!]);
    from = amp + whole.length;
    amp = raw.indexOf('&', from);
  }
  return out + raw.slice(from);
}

function isXmlChar(cp: number): boolean {
  return cp === 0x9 || cp === 0xa || cp === 0xd || (cp >= 0x20 && cp <= 0xd7ff) || (cp >= 0xe000 && cp <= 0xfffd) || (cp >= 0x10000 && cp <= 0x10ffff);
}

function fail(reason: string): never {
  throw new Unsafe(`Narrative ${reason}`);
}
