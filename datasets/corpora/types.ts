/** A corpus is a named, re-iterable stream of documents (plain text, in a fixed order). */
export interface Corpus {
  name: string;
  /** Documents in corpus order; empty documents are yielded too (the split/writer decide). */
  documents(signal?: AbortSignal): AsyncIterable<string>;
  /** Human-readable provenance for lineage records. */
  describe(): Record<string, unknown>;
}
