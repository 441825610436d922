import { readFileSync } from 'node:fs';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { narrativeProblem } from './narrative.js';

const xhtml = (inner: string) => `<div xmlns="http://www.w3.org/1999/xhtml">${inner}</div>`;

describe('narrativeProblem', () => {
  describe('accepts benign narratives', () => {
    it.each([
      ['plain Spanish text', 'Paciente de 45 años con cefalea; refiere “dolor pulsátil” ¿desde ayer?'],
      ['escaped markup characters', 'PA &lt; 140/90 &amp;&amp; FC &gt; 60 — "bien" y O&apos;Brien'],
      ['raw apostrophes, quotes and ">"', `Dijo: "no tomo la pastilla" y O'Brien > 3 días`],
      ['numeric character references', 'Temperatura 38&#160;&#xB0;C &#x1F321;'],
      ['formatting elements', '<p><b>Plan:</b> <i>control</i> en <em>un</em> mes.<br/>Ver <span style="color: #c00; font-weight: bold">alergias</span>.</p>'],
      ['a table', '<table class="grid" border="1"><thead><tr><th scope="col">Signo</th><th>Valor</th></tr></thead><tbody><tr><td colspan="2">FC 72 lpm</td></tr></tbody></table>'],
      ['lists', '<ul><li>Losartán 50 mg</li><li>Acetaminofén 500 mg</li></ul><ol><li>uno</li></ol><dl><dt>Dx</dt><dd>HTA</dd></dl>'],
      ['links: https, relative, fragment, mailto', '<a href="https://www.minsalud.gov.co/">MinSalud</a> <a href="Patient/123">paciente</a> <a href="#nota">nota</a> <a href="mailto:consulta@clinica.example">escribir</a> <a name="nota">ancla</a>'],
      ['an image of a contained Binary', '<img src="#foto" alt="lesión"/>'],
      ['a harmless comment', 'Texto <!-- generado por telesalud --> visible'],
      ['headings, pre and code', '<h1>Nota</h1><h6>pie</h6><pre>  sangría </pre><code>I10</code>'],
      ['single-quoted attributes and spaces around =', `<p class = 'x'  title="a 'b' c">ok</p>`],
      ['words that look like attacks in text', 'El paciente escribió "select * from", "&lt;script&gt;" y javascript:alert(1) -- solo texto'],
      ['xml:lang and lang', '<p lang="es" xml:lang="es">Hola</p>'],
      ['an empty element written self-closed', '<p/>Texto'],
    ])('%s', (_, inner) => {
      expect(narrativeProblem(xhtml(inner))).toBeUndefined();
    });

    it('allows whitespace around the root', () => {
      expect(narrativeProblem(`\n  ${xhtml('hola')}\n`)).toBeUndefined();
    });
  });

  describe('refuses script in every disguise', () => {
    it.each([
      ['script', '<script>alert(1)</script>'],
      ['mixed-case script', '<ScRiPt>alert(1)</ScRiPt>'],
      ['script in a namespace', '<x:script xmlns:x="http://www.w3.org/1999/xhtml">alert(1)</x:script>'],
      ['style element', '<style>body{background:url(javascript:alert(1))}</style>'],
      ['img onerror, quoted', '<img src="x" onerror="alert(1)"/>'],
      ['img onerror, unquoted', '<img src=x onerror=alert(1)>'],
      ['mixed-case event handler', '<p OnMouseOver="alert(1)">x</p>'],
      ['svg onload', '<svg onload="alert(1)"></svg>'],
      ['iframe', '<iframe src="https://evil.example"></iframe>'],
      ['form and input', '<form action="https://evil.example"><input name="p"/></form>'],
      ['object', '<object data="x.swf"></object>'],
      ['embed', '<embed src="x.swf"/>'],
      ['applet', '<applet code="X"></applet>'],
      ['meta refresh', '<meta http-equiv="refresh" content="0;url=javascript:alert(1)"/>'],
      ['base', '<base href="https://evil.example/"/>'],
      ['link stylesheet', '<link rel="stylesheet" href="https://evil.example/x.css"/>'],
      ['frameset', '<frameset><frame src="x"/></frameset>'],
      ['body onload', '<body onload="alert(1)"></body>'],
      ['javascript: href', '<a href="javascript:alert(1)">x</a>'],
      ['JaVaScRiPt: href', '<a href="JaVaScRiPt:alert(1)">x</a>'],
      ['javascript: with leading space', '<a href=" javascript:alert(1)">x</a>'],
      ['javascript: split by a tab entity', '<a href="java&#x09;script:alert(1)">x</a>'],
      ['javascript: split by a newline', '<a href="java\nscript:alert(1)">x</a>'],
      ['decimal-encoded javascript:', '<a href="&#106;avascript:alert(1)">x</a>'],
      ['hex-encoded javascript:', '<a href="&#x6A;&#x61;&#x76;&#x61;&#x73;&#x63;&#x72;&#x69;&#x70;&#x74;&#x3A;alert(1)">x</a>'],
      ['HTML5 &colon; entity', '<a href="javascript&colon;alert(1)">x</a>'],
      ['vbscript:', '<a href="vbscript:msgbox(1)">x</a>'],
      ['data: text/html', '<a href="data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==">x</a>'],
      ['data: image src', '<img src="data:image/svg+xml;base64,PHN2Zz4=" alt="x"/>'],
      ['http image (mixed content, tracking)', '<img src="http://evil.example/p.gif" alt="x"/>'],
      ['style url()', '<p style="background:url(javascript:alert(1))">x</p>'],
      ['style expression()', '<p style="width: expression(alert(1))">x</p>'],
      ['style escapes', '<p style="background:u\\72l(x)">x</p>'],
      ['style comment splitting a keyword', '<p style="width: expr/**/ession(alert(1))">x</p>'],
      ['style @import', '<p style="@import \'x.css\'">x</p>'],
      ['comment hiding a script from XML but not HTML', '<!--><script>alert(1)</script>-->'],
      ['comment closed the HTML way', '<!-- --!><script>alert(1)</script> -->'],
      ['server-side include in a comment', '<!--#exec cmd="/bin/id"-->x'],
      ['conditional comment', '<!--[if IE]><script>alert(1)</script><![endif]-->x'],
      ['CDATA hiding a script', '<![CDATA[><script>alert(1)</script>]]>'],
      ['DOCTYPE with entities', '<!DOCTYPE x [<!ENTITY a "b">]>'],
      ['processing instruction', '<?xml-stylesheet href="x.xsl"?>'],
      ['unknown attribute', '<a href="#x" target="_blank">x</a>'],
      ['name on img (DOM clobbering)', '<img src="#x" name="cookie" alt=""/>'],
      ['foreign namespace declaration', '<p xmlns="http://www.w3.org/2000/svg">x</p>'],
      ['xlink', '<a xlink:href="javascript:alert(1)">x</a>'],
    ])('%s', (_, inner) => {
      expect(narrativeProblem(xhtml(inner))).toMatch(/^Narrative /);
    });
  });

  describe('refuses what is not well-formed XHTML', () => {
    it.each([
      ['no root div', '<p>not a div</p>'],
      ['a root div without the XHTML namespace', '<div>no namespace</div>'],
      ['a root div with another namespace', '<div xmlns="http://www.w3.org/2000/svg">x</div>'],
      ['plain text', 'solo texto'],
      ['an empty string', ''],
      ['two roots', `${xhtml('a')}${xhtml('b')}`],
      ['text after the root', `${xhtml('a')} y más`],
      ['an unclosed element', xhtml('<b>unclosed')],
      ['an unclosed root', '<div xmlns="http://www.w3.org/1999/xhtml">abierto'],
      ['mismatched tags', xhtml('<b><i>x</b></i>')],
      ['a stray closing tag', xhtml('x</p>')],
      ['an unclosed void element', xhtml('línea<br>otra')],
      ['an unknown named entity', xhtml('a&nbsp;b')],
      ['a bare ampersand', xhtml('Pérez & Hijos')],
      ['an entity without semicolon', xhtml('&lt b')],
      ['a numeric reference to NUL', xhtml('&#0;')],
      ['a numeric reference to a surrogate', xhtml('&#xD800;')],
      ['a raw "<" in text', xhtml('PA < 140')],
      ['a raw "<" in an attribute', xhtml('<p title="a<b">x</p>')],
      ['an unquoted attribute', xhtml('<p class=x>y</p>')],
      ['an attribute without a value', xhtml('<td nowrap>y</td>')],
      ['a repeated attribute', xhtml('<p class="a" class="b">y</p>')],
      ['attributes without space between', xhtml('<p class="a"title="b">y</p>')],
      ['uppercase element names', xhtml('<P>x</P>')],
      ['"]]>" in text', xhtml('a ]]> b')],
      ['only whitespace content (txt-2)', xhtml('  <p> </p> ')],
      ['a non-XML character', xhtml('a\uFFFEb')],
      ['a lone surrogate', xhtml('a\uD800b')],
      ['an unterminated comment', xhtml('<!-- sin cierre')],
      ['"--" in a comment', xhtml('<!-- a -- b -->x')],
    ])('%s', (_, div) => {
      expect(narrativeProblem(div)).toMatch(/^Narrative /);
    });
  });

  it('says what is wrong', () => {
    expect(narrativeProblem(xhtml('<script>alert(1)</script>'))).toBe('Narrative has <script>, which a narrative may not contain');
    expect(narrativeProblem(xhtml('<img src="x" onerror="alert(1)"/>'))).toBe('Narrative has the event handler onerror on <img>');
    expect(narrativeProblem(xhtml('a&nbsp;b'))).toMatch(/&nbsp;/);
  });

  it('answers any string with a reason or undefined, never an exception', () => {
    const piece = fc.constantFrom('<', '>', '/', '&', ';', '#', 'x', '"', "'", '=', ' ', '!', '-', '?', '[', ']', 'div', 'p', 'b', 'a', 'img', 'href', 'on', ':', '&amp;', '&#1', '<!--', '-->');
    fc.assert(
      fc.property(fc.oneof(fc.string(), fc.array(piece, { maxLength: 40 }).map((ps) => ps.join(''))), (inner) => {
        const answer = narrativeProblem(xhtml(inner));
        expect(answer === undefined || answer.startsWith('Narrative ')).toBe(true);
      }),
      { numRuns: 2000 },
    );
  });

  it('stays linear on large input', () => {
    const big = xhtml('<p>Texto &amp; más <b>negrita</b></p>'.repeat(20_000)); // ~0.7 MB
    const started = performance.now();
    expect(narrativeProblem(big)).toBeUndefined();
    expect(narrativeProblem(xhtml('<b>'.repeat(50_000)))).toMatch(/closes <b> with <\/div>/);
    expect(performance.now() - started).toBeLessThan(1000);
  });

  // The XSS requests of the CRS regression corpus (../shared/corpus, see DESIGN.md), as narrative text:
  // each must be refused unless it has no markup at all (then it is only text).
  const CORPUS = new URL('../../../../shared/corpus/crs-attacks-dev.jsonl', import.meta.url);
  it('refuses every markup payload of the XSS attack corpus', () => {
    const payloads = readFileSync(CORPUS, 'utf8')
      .split('\n')
      .filter((line) => line.includes('"family": "941"'))
      .flatMap((line) => {
        const request = JSON.parse(line) as { uri: string; body: string | null };
        const query = request.uri.split('?').slice(1).join('?');
        return [...query.split('&'), ...(request.body ?? '').split('&'), request.body ?? ''].map((part) => {
          try {
            return decodeURIComponent(part.replace(/\+/g, ' '));
          } catch {
            return part;
          }
        });
      })
      .filter((payload) => payload.includes('<'));
    expect(payloads.length).toBeGreaterThan(50);
    const accepted = payloads.filter((payload) => narrativeProblem(xhtml(payload)) === undefined);
    expect(accepted).toEqual([]);
  });
});
