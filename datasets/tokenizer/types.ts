/** The tokenizer contract every module programs against (see helpers' INTERFACES.md). */
export interface Tokenizer {
  /** 'gpt2' or the artifact's name. */
  name: string;
  /** Real vocabulary size (models pad it to a multiple of 8). */
  vocabSize: number;
  /** Id of `<|endoftext|>`. */
  eosId: number;
  /** Encodes text; a literal `<|endoftext|>` becomes eosId (Hugging Face GPT-2 behaviour). */
  encode(text: string): number[];
  /** Encodes text treating `<|endoftext|>` as ordinary characters. */
  encodeOrdinary(text: string): number[];
  /** Decodes ids to text (invalid UTF-8 from partial sequences becomes U+FFFD). */
  decode(ids: ArrayLike<number>): string;
  /** The text of one token (may contain U+FFFD when the token is part of a multi-byte character). */
  decodePiece?(id: number): string;
}

export const EOS_TEXT = '<|endoftext|>';
