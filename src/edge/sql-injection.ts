/**
 * SQL injection by structure, the way libinjection works: tokenise the value as a SQL lexer
 * would — as it stands, and as if it were pasted inside a '…' or "…" literal — and look at the
 * shape of the token stream. "O'Brien" or "drop the dose" have no SQL shape; "x' or 1=1--"
 * does, however it is spelled. (No maintained libinjection port exists on npm; this keeps the
 * idea, with shapes written for the attack classes rather than a list of fingerprints.)
 *
 * Token types: s string, 1 number/literal, n name, k keyword, E statement verb, U union,
 * & logic operator, o comparison, a other operator, f function call, v variable, c comment, ( ) , ; .
 */

const LOGIC = new Set(['and', 'or', 'xor', '&&', '||', 'div']);
const STATEMENTS = new Set([
  'select', 'insert', 'update', 'delete', 'drop', 'create', 'alter', 'truncate', 'exec', 'execute', 'declare', 'shutdown', 'waitfor',
  'grant', 'revoke', 'merge', 'handler', 'rename', 'replace', 'call', 'load', 'backup', 'restore', 'openrowset', 'opendatasource', 'dbcc',
]);
// Words that are SQL and rarely prose; common English words that SQL also uses (on, in, is, by, as…) stay names.
const KEYWORDS = new Set([
  'from', 'where', 'into', 'values', 'table', 'like', 'rlike', 'regexp', 'glob', 'having', 'group', 'order', 'limit', 'offset', 'exists',
  'procedure', 'outfile', 'dumpfile', 'collate', 'sounds', 'binary', 'database', 'schema', 'column', 'distinct', 'between', 'join',
  'returning', 'information_schema', 'sysobjects', 'syscolumns', 'pg_catalog', 'sqlite_master', 'dual', 'elseif', 'null', 'is', 'not',
  'case', 'when', 'then', 'else', 'end', 'in', 'as', 'by', 'desc', 'asc', 'if', 'all', 'top', 'set', 'mod', 'rownum', 'sysdate',
]);
// Of those, the ones prose uses: they count only in parameter values, not in free text.
const PROSE_WORDS = new Set(['is', 'not', 'case', 'when', 'then', 'else', 'end', 'in', 'as', 'by', 'if', 'all', 'top', 'set', 'from', 'where', 'into', 'order', 'group', 'like', 'between', 'join', 'binary', 'table', 'column', 'limit', 'values', 'exists', 'desc', 'asc', 'mod', 'database', 'schema', 'distinct', 'sounds', 'procedure', 'offset', 'having']);
/** Functions an attacker reaches for: timing, file access, error-based extraction, fingerprinting. */
export const SQL_ATTACK_FUNCTIONS =
  /\b(?:sleep|benchmark|pg_sleep|waitfor|load_file|extractvalue|updatexml|xmltype|dbms_\w+|utl_\w+|sys_eval|sys_exec|xp_cmdshell|xp_\w+|sp_\w+|lo_import|lo_export|lo_get|pg_read_file|pg_ls_dir|json_keys|name_const|exp|geometrycollection|polygon|multipoint|randomblob|sqlite_version|char|chr|nchar|concat|concat_ws|group_concat|string_agg|ascii|ord|hex|unhex|substr|substring|mid|left|right|instr|locate|version|database|user|current_user|system_user|session_user|schema|@@version|convert|cast|iif|elt|make_set|if|ifnull|nullif|isnull|coalesce|count|md5|sha1|rand|floor|unistr|encode|decode|to_char|ctxsys\.\w+|owa_util\.\w+)\s*\(/;

type Token = string;

const WORD = /[a-z_@$#][a-z0-9_@$#]*/y;
const NUMBER = /(?:0x[0-9a-f]+|0b[01]+|\d+(?:\.\d*)?(?:e[+-]?\d+)?|\.\d+)/y;
const OPERATOR = /(?:<=>|<>|!=|<=|>=|:=|::|\|\||&&|!<|!>|[=<>+\-*/%^|&~!])/y;
// Comparisons (o) build tautologies; arithmetic and the rest (a) only glue expressions.
const COMPARISON = new Set(['<=>', '<>', '!=', '<=', '>=', '=', '<', '>', ':=', '!<', '!>']);

/** Token types of `input`, read from `start` in the given lexer state. */
function tokenize(input: string, openQuote: "'" | '"' | undefined, prose: boolean): Token[] {
  const out: Token[] = [];
  let i = 0;
  const n = input.length;
  if (openQuote) {
    // The value is pasted inside a literal: everything up to the first matching quote is the string.
    const close = input.indexOf(openQuote);
    if (close < 0) return ['s'];
    out.push('s');
    i = close + 1;
  }
  while (i < n && out.length < 40) {
    const c = input[i]!;
    if (c === ' ' || c === '\t' || c === '\n' || c === '\r' || c === '\f' || c === '\v' || c === '\u00a0') {
      i++;
      continue;
    }
    if (c === '-' && input[i + 1] === '-') {
      out.push('c');
      break;
    }
    if (c === '#') {
      out.push('c');
      break;
    }
    if (c === '/' && input[i + 1] === '*') {
      if (input[i + 2] === '!') {
        // MySQL runs the content of /*! … */: keep lexing inside it.
        i += 3;
        while (i < n && /\d/.test(input[i]!)) i++;
        continue;
      }
      const end = input.indexOf('*/', i + 2);
      out.push('c');
      i = end < 0 ? n : end + 2;
      continue;
    }
    if (c === '*' && input[i + 1] === '/') {
      i += 2;
      continue;
    }
    if (c === "'" || c === '"' || c === '`') {
      let j = i + 1;
      while (j < n) {
        if (input[j] === c) {
          if (input[j + 1] === c) {
            j += 2;
            continue;
          }
          break;
        }
        if (input[j] === '\\') j++;
        j++;
      }
      out.push(c === '`' ? 'n' : 's');
      i = j + 1;
      continue;
    }
    if (c === '(' || c === ')' || c === ',' || c === ';' || c === '.') {
      out.push(c);
      i++;
      continue;
    }
    NUMBER.lastIndex = i;
    if (/[0-9.]/.test(c) && NUMBER.test(input)) {
      out.push('1');
      i = NUMBER.lastIndex;
      continue;
    }
    WORD.lastIndex = i;
    if (WORD.test(input)) {
      const word = input.slice(i, WORD.lastIndex);
      i = WORD.lastIndex;
      let k = i;
      while (k < n && (input[k] === ' ' || input[k] === '\t')) k++;
      if (word.startsWith('@')) out.push('v');
      else if (LOGIC.has(word)) out.push('&');
      else if (word === 'union') out.push('U');
      else if (STATEMENTS.has(word)) out.push('E');
      else if (input[k] === '(') out.push('f');
      else if (word === 'null' || word === 'true' || word === 'false') out.push('1');
      else if (KEYWORDS.has(word) && !(prose && PROSE_WORDS.has(word))) out.push('k');
      else out.push('n');
      continue;
    }
    OPERATOR.lastIndex = i;
    if (OPERATOR.test(input)) {
      const op = input.slice(i, OPERATOR.lastIndex);
      out.push(op === '||' || op === '&&' ? '&' : COMPARISON.has(op) ? 'o' : 'a');
      i = OPERATOR.lastIndex;
      continue;
    }
    i++; // anything else (letters of other scripts, punctuation SQL ignores)
  }
  // Cut short: mark it, so no shape takes the cut for the end of the value.
  if (i < n && out.length >= 40 && out[out.length - 1] !== 'c') out.push('T');
  return out;
}

interface Shape {
  re: RegExp;
  what: string;
  /** Read on the runs that paste the value inside a literal (the leading s is the literal closing). */
  quoted?: boolean;
  /** Only for short parameter values: prose has these shapes too. */
  strict?: boolean;
}

/** Shapes that only injected SQL has, each with what it means. */
const SHAPES: Shape[] = [
  { re: /U\(?k?\(?E/, what: 'union select' },
  { re: /;\(?E(?:k|o|c|v|1|f|$)/, what: 'stacked statement' },
  { re: /;\(?E/, what: 'stacked statement', strict: true },
  { re: /^s\)*&\(?[1sn(v]o\(?[1snv(]/, what: 'string break then tautology', quoted: true },
  { re: /^s\)*&\(?f/, what: 'string break then function', quoted: true },
  { re: /^s\)*[;U]/, what: 'string break then statement', quoted: true },
  { re: /^s\)*c/, what: 'string break then comment', quoted: true },
  { re: /^s\)*&/, what: 'string break then logic operator', quoted: true, strict: true },
  { re: /^s\)*E/, what: 'string break then statement', quoted: true, strict: true },
  { re: /^s\)*a\(*(?:f|v)/, what: 'string break then expression', quoted: true },
  { re: /^s\)*o\(?(?:[1sn(v]|f)/, what: 'string break then comparison', quoted: true, strict: true },
  { re: /^s\)*k/, what: 'string break then SQL clause', quoted: true, strict: true },
  { re: /^s\)*[1n](?:&|c$|;)/, what: 'string break then logic operator', quoted: true, strict: true },
  { re: /^1\)*&\(?(?:[1snv(]|f)/, what: 'number then logic operator', strict: true },
  { re: /^1\)*[k;U]/, what: 'number then SQL clause', strict: true },
  { re: /^1\)*c$/, what: 'number then comment', strict: true },
  { re: /^[1n]\)+(?:&|;|c|U|k)/, what: 'parenthesis break', strict: true },
  { re: /&\(?1o\(?1|&\(?so\(?s/, what: 'tautology' },
  { re: /&\(*[1snv]\)*o\(*[1snv(]/, what: 'tautology', strict: true },
  { re: /^\(*[1s]\)*o\(*[1s]\)*c?$/, what: 'comparison', strict: true },
  { re: /^\)+\s*(?:k|n?k)/, what: 'parenthesis break then clause', strict: true },
  { re: /&\(?f\(/, what: 'logic operator then function', strict: true },
  { re: /E(?:[onk1,v(f*]|\.)*k/, what: 'statement with clause', strict: true },
  { re: /^E[n1sv(fo,]/, what: 'statement', strict: true },
  { re: /^\(*f\(/, what: 'function call', strict: true },
  { re: /^\(*(?:v|k)[&o;c(]/, what: 'expression', strict: true },
  { re: /^\(*&/, what: 'leading logic operator', strict: true },
];

export interface SqlFinding {
  shape: string;
  fingerprint: string;
}

const LOOKS_SQL = /['"`;()=<>|&#\-*/@]|\b(?:or|and|xor|union|select|sleep|benchmark|waitfor|exec|div|like|having|glob|regexp|rlike|between|in|is|not|order|group|limit)\b/;

/**
 * The SQL shape of a value, or undefined. `strict` for parameter values, where shapes that prose
 * also has (a bare statement verb, "x or y = z") are still attacks; free text leaves them out.
 */
export function sqlInjection(text: string, strict: boolean): SqlFinding | undefined {
  if (!LOOKS_SQL.test(text)) return undefined;
  for (const quote of [undefined, "'", '"'] as const) {
    if (quote && !text.includes(quote)) continue;
    const tokens = tokenize(text, quote, !strict).join('');
    // One word is not a statement ("div", "select" as a JSON key or a value).
    if (tokens.length < 2) continue;
    for (const shape of SHAPES) {
      if (shape.strict && !strict) continue;
      if (shape.quoted && quote === undefined) continue;
      if (shape.re.test(tokens)) return { shape: shape.what, fingerprint: tokens.slice(0, 12) };
    }
  }
  return undefined;
}

/** For tests and diagnosis. */
export function sqlTokens(text: string, quote?: "'" | '"', prose = false): string {
  return tokenize(text, quote, prose).join('');
}
