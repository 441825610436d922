import type { ValidationIssue } from './validation.js';

/**
 * Rules of FHIR's JSON format that hold for every element, checked before anything else
 * walks the resource: bounded nesting (a deep document must not exhaust the stack), strings
 * that are well-formed Unicode without control characters (PostgreSQL refuses both), no empty
 * strings, arrays or objects, and element names that are names, not JavaScript internals.
 */
export const MAX_DEPTH = 40;

const ELEMENT_NAME = /^_?[A-Za-z][A-Za-z0-9_]{0,99}$/;
const FORBIDDEN_NAMES = new Set(Object.getOwnPropertyNames(Object.prototype));
// Tab, LF and CR are allowed; every other C0 control and DEL are not.
/** A lone surrogate half: text that is not Unicode (String#isWellFormed is not in Node 20's TypeScript lib). */
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

export function isWellFormedText(text: string): boolean {
  return !LONE_SURROGATE.test(text);
}

const CONTROL = /[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f]/;

export function jsonRuleIssues(resource: unknown, root: string): ValidationIssue[] {
  const issues: ValidationIssue[] = [];
  walk(resource, root, 0, issues);
  return issues;
}

function walk(node: unknown, path: string, depth: number, issues: ValidationIssue[]): void {
  if (issues.length >= 50) return;
  if (depth > MAX_DEPTH) {
    issues.push({ expression: path, message: `nested deeper than ${MAX_DEPTH} levels` });
    return;
  }
  if (typeof node === 'string') {
    if (!isWellFormedText(node)) issues.push({ expression: path, message: 'text is not well-formed Unicode (a lone surrogate)' });
    else if (CONTROL.test(node)) issues.push({ expression: path, message: 'text contains a control character' });
    else if (node.trim().length === 0) issues.push({ expression: path, message: 'a value must not be empty or only whitespace (leave the element out instead)' });
    return;
  }
  if (Array.isArray(node)) {
    if (node.length === 0) issues.push({ expression: path, message: 'an array must not be empty (leave the element out instead)' });
    node.forEach((item, i) => {
      // null keeps positions aligned between a primitive array and its _extension array.
      if (item !== null) walk(item, `${path}[${i}]`, depth + 1, issues);
    });
    return;
  }
  if (node !== null && typeof node === 'object') {
    const keys = Object.keys(node);
    if (keys.length === 0) issues.push({ expression: path, message: 'an object must not be empty (leave the element out instead)' });
    for (const key of keys) {
      if (FORBIDDEN_NAMES.has(key) || !ELEMENT_NAME.test(key)) {
        issues.push({ expression: `${path}.${key.slice(0, 40)}`, message: `"${key.slice(0, 40)}" is not a FHIR element name` });
        continue;
      }
      walk((node as Record<string, unknown>)[key], `${path}.${key}`, depth + 1, issues);
    }
  }
}
