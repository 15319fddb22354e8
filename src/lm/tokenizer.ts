/**
 * Tokenizers. Any model folder's tokenizer is opened through transformers.js
 * `AutoTokenizer` (so hub models work the same way); the shipped tiny models use a
 * character-level vocabulary written here as a `tokenizer.json` that AutoTokenizer reads:
 * a BPE model with no merges (every character is a token), no pre-tokenizer, a Fuse
 * decoder, and no post-processor (nothing is added around the text).
 */
import { UsageError } from '../core/errors.js';

export interface Tokenizer {
  readonly vocabSize: number;
  readonly eosTokenId: number;
  readonly padTokenId: number;
  encode(text: string): number[];
  decode(ids: ArrayLike<number>, skipSpecial?: boolean): string;
}

export const EOS_TOKEN = '<|endoftext|>';
export const UNK_TOKEN = '<unk>';

/** 0 = <|endoftext|> (BOS = EOS = PAD), 1 = <unk>, 2 = "\n", 3.. = printable ASCII 32..126. */
export function charVocab(): string[] {
  const v = [EOS_TOKEN, UNK_TOKEN, '\n'];
  for (let c = 32; c <= 126; c++) v.push(String.fromCharCode(c));
  return v;
}

export class CharTokenizer implements Tokenizer {
  readonly vocab: string[];
  readonly eosTokenId = 0;
  readonly padTokenId = 0;
  readonly unkTokenId = 1;
  private readonly ids = new Map<string, number>();

  constructor(vocab: string[] = charVocab()) {
    this.vocab = vocab;
    vocab.forEach((t, i) => this.ids.set(t, i));
  }

  get vocabSize(): number {
    return this.vocab.length;
  }

  encode(text: string): number[] {
    const out: number[] = [];
    for (const ch of text) out.push(this.ids.get(ch) ?? this.unkTokenId);
    return out;
  }

  decode(ids: ArrayLike<number>, skipSpecial = false): string {
    let s = '';
    for (let i = 0; i < ids.length; i++) {
      const id = ids[i];
      if (skipSpecial && (id === this.eosTokenId || id === this.unkTokenId)) continue;
      s += this.vocab[id] ?? UNK_TOKEN;
    }
    return s;
  }

  /** tokenizer.json in the Hugging Face `tokenizers` format. */
  tokenizerJson(): object {
    const special = (id: number) => ({ id, content: this.vocab[id], single_word: false, lstrip: false, rstrip: false, normalized: false, special: true });
    return {
      version: '1.0',
      truncation: null,
      padding: null,
      added_tokens: [special(0), special(1)],
      normalizer: null,
      pre_tokenizer: null,
      post_processor: null,
      decoder: { type: 'Fuse' },
      model: {
        type: 'BPE',
        dropout: null,
        unk_token: UNK_TOKEN,
        continuing_subword_prefix: null,
        end_of_word_suffix: null,
        fuse_unk: false,
        byte_fallback: false,
        ignore_merges: false,
        vocab: Object.fromEntries(this.vocab.map((t, i) => [t, i])),
        merges: [],
      },
    };
  }

  tokenizerConfigJson(maxLength: number): object {
    return {
      tokenizer_class: 'PreTrainedTokenizerFast',
      bos_token: EOS_TOKEN,
      eos_token: EOS_TOKEN,
      pad_token: EOS_TOKEN,
      unk_token: UNK_TOKEN,
      add_bos_token: false,
      add_eos_token: false,
      // Character tokens must decode verbatim (the default cleanup would eat " ." and " ,").
      clean_up_tokenization_spaces: false,
      model_max_length: maxLength,
      padding_side: 'left',
    };
  }
}

/** A transformers.js tokenizer behind the project's interface. */
export class HfTokenizer implements Tokenizer {
  constructor(
    private readonly tok: any,
    readonly vocabSize: number,
    readonly eosTokenId: number,
    readonly padTokenId: number,
  ) {}

  encode(text: string): number[] {
    return this.tok.encode(text, { add_special_tokens: false }) as number[];
  }

  decode(ids: ArrayLike<number>, skipSpecial = false): string {
    const arr = Array.from(ids);
    if (arr.length === 0) return '';
    return this.tok.decode(arr, { skip_special_tokens: skipSpecial, clean_up_tokenization_spaces: false }) as string;
  }

  get raw(): any {
    return this.tok;
  }
}

/** Opens a tokenizer with AutoTokenizer from a local folder, never from the network. */
export async function loadHfTokenizer(dir: string, eosTokenId: number, vocabSize: number): Promise<HfTokenizer> {
  const { AutoTokenizer, env } = await import('@huggingface/transformers');
  const path = await import('node:path');
  const abs = path.resolve(dir);
  env.allowRemoteModels = false;
  env.allowLocalModels = true;
  env.localModelPath = path.dirname(abs) + path.sep;
  let tok: any;
  try {
    tok = await AutoTokenizer.from_pretrained(path.basename(abs));
  } catch (err) {
    throw new UsageError(`${dir}: cannot load tokenizer (${(err as Error).message.split('\n')[0]})`);
  }
  const pad = tok.pad_token_id ?? eosTokenId;
  return new HfTokenizer(tok, vocabSize, eosTokenId, pad);
}

/**
 * The characters of `text` the tokenizer cannot represent: those that do not survive
 * encode → decode on their own (they become <unk> or vanish). Byte-level tokenizers
 * represent everything; the shipped character models know printable ASCII and "\n".
 */
export function unencodableChars(tok: Tokenizer, text: string): string[] {
  const bad: string[] = [];
  for (const ch of new Set(text)) if (tok.decode(tok.encode(ch)) !== ch) bad.push(ch);
  return bad;
}

/** "é" (U+00E9), "→" (U+2192) */
export function describeChars(chars: string[]): string {
  return chars.map((c) => `${JSON.stringify(c)} (U+${c.codePointAt(0)!.toString(16).toUpperCase().padStart(4, '0')})`).join(', ');
}
