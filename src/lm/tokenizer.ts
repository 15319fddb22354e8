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
  /** The BOS id put before every X (see encodeX), or null when the tokenizer adds none. */
  readonly bosTokenId?: number | null;
  /** ids the tokenizer knows: 0..tokenizerSize−1 (config vocab_size may be padded beyond). */
  readonly tokenizerSize?: number;
  /** special tokens (added tokens marked special): never sampled into Z. */
  readonly specialIds?: readonly number[];
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
    const special = (id: number) => ({
      id,
      content: this.vocab[id],
      single_word: false,
      lstrip: false,
      rstrip: false,
      normalized: false,
      special: true,
    });
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

/** The ids of a prompt X: the tokenizer's BOS (when it adds one) then the text. */
export function encodeX(tok: Tokenizer, text: string): number[] {
  const ids = tok.encode(text);
  return tok.bosTokenId !== undefined && tok.bosTokenId !== null ? [tok.bosTokenId, ...ids] : ids;
}

/**
 * Ids that may enter Z: those the tokenizer knows (below tokenizerSize, not the padded rest
 * of the model's vocab_size) that are not special tokens.
 */
export function samplableIds(tok: Tokenizer, modelVocab: number): number[] {
  const n = Math.min(modelVocab, tok.tokenizerSize ?? modelVocab);
  const special = new Set(tok.specialIds ?? []);
  const out: number[] = [];
  for (let i = 0; i < n; i++) if (!special.has(i)) out.push(i);
  return out;
}

/** A transformers.js tokenizer behind the project's interface. */
export class HfTokenizer implements Tokenizer {
  constructor(
    private readonly tok: any,
    readonly vocabSize: number,
    readonly eosTokenId: number,
    readonly padTokenId: number,
    readonly bosTokenId: number | null = null,
    readonly tokenizerSize: number = vocabSize,
    readonly specialIds: readonly number[] = [],
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

export interface TokenizerOptions {
  /**
   * BOS before every X: 'auto' (default) when the tokenizer's post-processor adds one
   * (Llama-3 style), true = always (the config's bos_token_id / the tokenizer's BOS), false = never.
   */
  bos?: 'auto' | boolean;
  /** BOS id from config.json, used with bos: true when the tokenizer names none. */
  configBosId?: number;
}

/** What tokenizer.json says: how many ids it knows and which are special. */
export function tokenizerJsonFacts(json: any): { size: number; specialIds: number[] } {
  const vocab = json?.model?.vocab;
  let size = 0;
  if (Array.isArray(vocab)) size = vocab.length;
  else if (vocab && typeof vocab === 'object') for (const id of Object.values(vocab) as number[]) size = Math.max(size, id + 1);
  const specialIds: number[] = [];
  for (const t of json?.added_tokens ?? []) {
    size = Math.max(size, t.id + 1);
    if (t.special) specialIds.push(t.id);
  }
  return { size, specialIds };
}

/** Opens a tokenizer with AutoTokenizer from a local folder, never from the network. */
export async function loadHfTokenizer(dir: string, eosTokenId: number, vocabSize: number, o: TokenizerOptions = {}): Promise<HfTokenizer> {
  const { AutoTokenizer, env } = await import('@huggingface/transformers');
  const path = await import('node:path');
  const { readFileSync } = await import('node:fs');
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
  let facts: { size: number; specialIds: number[] };
  try {
    facts = tokenizerJsonFacts(JSON.parse(readFileSync(path.join(abs, 'tokenizer.json'), 'utf8')));
  } catch (err) {
    throw new UsageError(`${dir}: cannot read tokenizer.json (${(err as Error).message.split('\n')[0]})`);
  }
  // A tokenizer/model mismatch would index logits out of range.
  if (facts.size > vocabSize)
    throw new UsageError(
      `${dir}: the tokenizer has ${facts.size} ids but the model's vocab_size is ${vocabSize} (tokenizer and model do not match)`,
    );
  // Does the post-processor put a token in front? Then that is the BOS every X starts with.
  const withSpecial: number[] = tok.encode('a', { add_special_tokens: true });
  const plain: number[] = tok.encode('a', { add_special_tokens: false });
  const added = withSpecial.length > plain.length && withSpecial[0] !== plain[0] ? withSpecial[0] : null;
  const mode = o.bos ?? 'auto';
  let bos: number | null = null;
  if (mode === 'auto') bos = added;
  else if (mode === true) {
    bos = added ?? tok.bos_token_id ?? o.configBosId ?? null;
    if (bos === null) throw new UsageError(`${dir}: bos is on but neither the tokenizer nor config.json names a BOS token`);
  }
  return new HfTokenizer(tok, vocabSize, eosTokenId, pad, bos, facts.size, facts.specialIds);
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
