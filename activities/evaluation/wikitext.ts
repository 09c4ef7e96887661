/**
 * WikiText-2 (raw, v1) test split, word perplexity with rolling windows (PAPER.md §6.1), following the
 * harness's document-level loader and `wikitext` task:
 * 1. pages: split the raw file on "\n"; a top-level heading line (after collapsing "= = =" → "===" and
 *    "= =" → "==", stripped, it starts with "= " and ends with " =") starts a new page; the lines gathered so
 *    far, joined with "\n", are emitted when not blank; the last page is emitted unconditionally;
 * 2. the scored text is `detokenize(page)` (the harness's wikitext_detokenizer, rules in order below);
 * 3. Σ log p over rolling 512-token windows (harness.ts) of encode(detokenized page);
 * 4. words = len(re.split(r"\s+", page)) and bytes = UTF-8 length, both on the ORIGINAL page;
 * 5. word_perplexity = exp(−Σ ll / Σ words), byte_perplexity = exp(−Σ ll / Σ bytes),
 *    bits_per_byte = −Σ ll / Σ bytes / ln 2.
 */
import { loglikelihoodMany, maxLengthFor, rollingWindows, type LoglikelihoodRequest } from './harness';
import { checkAborted, type EvalModel, type EvalTokenizer, type RunHooks } from './types';

/** Python's Unicode `\s` (str.isspace); JS `\s` also matches U+FEFF, which Python does not. */
const PY_SPACE = '\\t\\n\\v\\f\\r \\x1c-\\x1f\\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000';
const PY_SPACES = new RegExp(`[${PY_SPACE}]+`, 'u');

/** Python's str.strip() with no argument. */
function pyStrip(s: string): string {
  return s.replace(new RegExp(`^[${PY_SPACE}]+|[${PY_SPACE}]+$`, 'gu'), '');
}

function isTopLevelHeading(line: string): boolean {
  const r = pyStrip(line.replaceAll('= = =', '===').replaceAll('= =', '=='));
  return r.startsWith('= ') && r.endsWith(' =');
}

/** Splits the raw test file into pages (step 1). */
export function splitWikitextPages(raw: string): string[] {
  const pages: string[] = [];
  let lines: string[] = [];
  for (const line of raw.split('\n')) {
    if (isTopLevelHeading(line)) {
      const page = lines.join('\n');
      if (pyStrip(page) !== '') pages.push(page);
      lines = [];
    }
    lines.push(line);
  }
  pages.push(lines.join('\n'));
  return pages;
}

/** The harness's wikitext detokenizer (step 2), rule for rule and in order. */
export function detokenizeWikitext(page: string): string {
  let s = page;
  // contractions
  s = s.replaceAll("s '", "s'");
  s = s.replace(/\/' [0-9]\//g, "/'[0-9]/"); // a literal pattern in the harness (slashes included); kept as is
  // number separators
  s = s.replaceAll(' @-@ ', '-').replaceAll(' @,@ ', ',').replaceAll(' @.@ ', '.');
  // punctuation
  s = s.replaceAll(' : ', ': ').replaceAll(' ; ', '; ').replaceAll(' . ', '. ');
  s = s.replaceAll(' ! ', '! ').replaceAll(' ? ', '? ').replaceAll(' , ', ', ');
  // brackets and quotes: trim spaces inside
  const sp = `[${PY_SPACE}]*`;
  s = s.replace(new RegExp(`\\(${sp}([^\\)]*?)${sp}\\)`, 'gu'), '($1)');
  s = s.replace(new RegExp(`\\[${sp}([^\\]]*?)${sp}\\]`, 'gu'), '[$1]');
  s = s.replace(new RegExp(`\\{${sp}([^}]*?)${sp}\\}`, 'gu'), '{$1}');
  s = s.replace(new RegExp(`"${sp}([^"]*?)${sp}"`, 'gu'), '"$1"');
  s = s.replace(new RegExp(`'${sp}([^']*?)${sp}'`, 'gu'), "'$1'");
  // miscellaneous
  s = s.replaceAll('= = = =', '====').replaceAll('= = =', '===').replaceAll('= =', '==');
  s = s.replaceAll(' ' + String.fromCharCode(176) + ' ', String.fromCharCode(176));
  s = s.replaceAll(' \n', '\n').replaceAll('\n ', '\n');
  s = s.replaceAll(' N ', ' 1 ');
  s = s.replaceAll(" 's", "'s");
  return s;
}

/** len(re.split(r"\s+", page)): empty leading/trailing fields count (step 4). */
export function countWords(page: string): number {
  return page.split(PY_SPACES).length;
}

export function countBytes(page: string): number {
  return Buffer.byteLength(page, 'utf8');
}

export interface WikitextResult {
  task: 'wikitext';
  word_perplexity: number;
  byte_perplexity: number;
  bits_per_byte: number;
  /** Pages evaluated. */
  n: number;
  words: number;
  bytes: number;
  /** Tokens predicted (= Σ encoded page lengths). */
  tokens: number;
}

export async function evaluateWikitext(
  model: EvalModel,
  tokenizer: EvalTokenizer,
  pages: readonly string[],
  hooks?: RunHooks,
  maxSeqLen = maxLengthFor(model),
): Promise<WikitextResult> {
  if (pages.length === 0) throw new Error('WikiText: no pages to evaluate');
  let words = 0;
  let bytes = 0;
  let tokens = 0;
  const requests: LoglikelihoodRequest[] = [];
  for (const page of pages) {
    const ids = tokenizer.encode(detokenizeWikitext(page));
    requests.push(...rollingWindows(ids, tokenizer.eosId, maxSeqLen));
    tokens += ids.length;
    words += countWords(page);
    bytes += countBytes(page);
  }
  checkAborted(hooks);
  const lls = await loglikelihoodMany(model, requests, { maxLength: maxSeqLen, signal: hooks?.signal, onProgress: hooks?.onProgress });
  const sumLl = lls.reduce((s, r) => s + r.ll, 0);
  return {
    task: 'wikitext',
    word_perplexity: Math.exp(-sumLl / words),
    byte_perplexity: Math.exp(-sumLl / bytes),
    bits_per_byte: -sumLl / bytes / Math.LN2,
    n: pages.length,
    words,
    bytes,
    tokens,
  };
}

export { rollingWindows };
