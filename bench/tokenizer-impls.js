// The GPT-2 tokenizers compared by bench/tokenizer.js, each as text → ids in "ordinary" mode
// (no special tokens), which is what tokenizing a corpus does.
const path = require('node:path');

function makeEncoder(name) {
  switch (name) {
    case 'ours': {
      const { createGpt2Tokenizer } = require(path.join(__dirname, '..', 'dist', 'datasets', 'tokenizer'));
      const tok = createGpt2Tokenizer();
      return (text) => tok.encodeOrdinary(text);
    }
    case 'gpt-tokenizer': {
      const { encode } = require('gpt-tokenizer/cjs/encoding/r50k_base');
      const opts = { disallowedSpecial: new Set() };
      return (text) => encode(text, opts);
    }
    case 'js-tiktoken': {
      const { getEncoding } = require('js-tiktoken');
      const enc = getEncoding('gpt2');
      return (text) => enc.encode(text, [], []);
    }
    case 'tiktoken': {
      const { get_encoding } = require('tiktoken');
      const enc = get_encoding('gpt2');
      return (text) => enc.encode_ordinary(text);
    }
    default:
      throw new Error(`unknown tokenizer ${name}`);
  }
}

module.exports = { makeEncoder, IMPLS: ['ours', 'gpt-tokenizer', 'js-tiktoken', 'tiktoken'] };
