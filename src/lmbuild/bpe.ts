/**
 * A byte-level BPE tokenizer (the GPT-2 / Llama-3 / Qwen2 kind) trained from text and written
 * as a Hugging Face `tokenizer.json` that transformers.js loads: ByteLevel pre-tokenizer
 * (GPT-2 split regex, bytes mapped to printable characters), BPE model with merges,
 * ByteLevel decoder, and either no added token in front or a BOS added by a
 * TemplateProcessing post-processor (Llama-3 style). Ids: the 256 byte symbols, then one per
 * merge, then the special tokens.
 */
import { UsageError } from '../core/errors.js';

/** GPT-2's bytes_to_unicode: printable bytes map to themselves, the rest to U+0100 onwards. */
export function byteToUnicode(): string[] {
  const keep: number[] = [];
  for (let b = 33; b <= 126; b++) keep.push(b);
  for (let b = 161; b <= 172; b++) keep.push(b);
  for (let b = 174; b <= 255; b++) keep.push(b);
  const map: string[] = new Array(256);
  let n = 0;
  for (let b = 0; b < 256; b++) map[b] = keep.includes(b) ? String.fromCharCode(b) : String.fromCharCode(256 + n++);
  return map;
}

const BYTE_SYMBOLS = byteToUnicode();

/** The GPT-2 pre-tokenizer split (what transformers.js's ByteLevel with use_regex applies). */
const SPLIT = /'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+/gu;

export interface BpeOptions {
  /** number of merges to learn (vocabulary = 256 + merges + specials) */
  merges: number;
  /** special tokens, in id order after the merges; the first is EOS */
  specials?: string[];
  /** the BOS token (one of the specials; tokenizer_config's bos_token), none by default */
  bosToken?: string | null;
  /** put the BOS in front of every encoding, as Llama-3's post-processor does (default false) */
  addBos?: boolean;
}

export class ByteBpe {
  readonly vocab: string[];
  readonly merges: [string, string][];
  readonly specials: string[];
  readonly bosToken: string | null;
  readonly addBos: boolean;

  constructor(vocab: string[], merges: [string, string][], specials: string[], bosToken: string | null, addBos: boolean) {
    this.vocab = vocab;
    this.merges = merges;
    this.specials = specials;
    this.bosToken = bosToken;
    this.addBos = addBos;
  }

  get vocabSize(): number {
    return this.vocab.length;
  }

  /** The EOS id (the first special token). */
  get eosTokenId(): number {
    return this.vocab.length - this.specials.length;
  }

  private ranks?: Map<string, number>;
  private index?: Map<string, number>;
  private cache = new Map<string, number[]>();

  /**
   * Ids of a text, no special tokens added (what transformers.js's encode with
   * add_special_tokens: false gives): GPT-2 split, bytes → symbols, then the merge of lowest
   * rank applied everywhere in the word until none applies (the `tokenizers` BPE model).
   */
  encode(text: string): number[] {
    if (!this.ranks) {
      this.ranks = new Map(this.merges.map(([a, b], i) => [a + '\u0000' + b, i]));
      this.index = new Map(this.vocab.map((t, i) => [t, i]));
    }
    const out: number[] = [];
    for (const w of text.match(SPLIT) ?? []) {
      let ids = this.cache.get(w);
      if (!ids) {
        ids = this.encodeWord(w);
        if (this.cache.size < 100_000) this.cache.set(w, ids);
      }
      out.push(...ids);
    }
    return out;
  }

  private encodeWord(w: string): number[] {
    const b2u = BYTE_SYMBOLS;
    let sym = Array.from(new TextEncoder().encode(w), (b) => b2u[b]);
    for (;;) {
      let best = -1;
      let bestRank = Infinity;
      for (let i = 0; i + 1 < sym.length; i++) {
        const r = this.ranks!.get(sym[i] + '\u0000' + sym[i + 1]);
        if (r !== undefined && r < bestRank) (bestRank = r), (best = i);
      }
      if (best < 0) break;
      const [a, b] = this.merges[bestRank];
      const next: string[] = [];
      for (let i = 0; i < sym.length; i++) {
        if (i + 1 < sym.length && sym[i] === a && sym[i + 1] === b) next.push(a + b), i++;
        else next.push(sym[i]);
      }
      sym = next;
    }
    return sym.map((t) => this.index!.get(t)!);
  }

  /** Text of ids (special tokens written as their content). */
  decode(ids: ArrayLike<number>): string {
    const u2b = new Map(BYTE_SYMBOLS.map((u, b) => [u, b]));
    const bytes: number[] = [];
    let out = '';
    const flush = () => {
      out += new TextDecoder().decode(Uint8Array.from(bytes));
      bytes.length = 0;
    };
    for (const id of Array.from(ids)) {
      const t = this.vocab[id];
      if (this.specials.includes(t)) flush(), (out += t);
      else for (const ch of t) bytes.push(u2b.get(ch)!);
    }
    flush();
    return out;
  }

  id(token: string): number {
    const i = this.vocab.indexOf(token);
    if (i < 0) throw new Error(`no token ${token}`);
    return i;
  }

  /**
   * Learns merges greedily: the most frequent adjacent pair over the pre-tokenized words
   * (ties → the first in code-unit order), as the `tokenizers` BPE trainer does.
   */
  static train(texts: string[], o: BpeOptions): ByteBpe {
    const b2u = byteToUnicode();
    const enc = new TextEncoder();
    const counts = new Map<string, number>();
    for (const t of texts) for (const w of t.match(SPLIT) ?? []) counts.set(w, (counts.get(w) ?? 0) + 1);
    const words = [...counts].map(([w, n]) => ({ sym: Array.from(enc.encode(w), (b) => b2u[b]), n }));
    const vocab = [...b2u];
    const merges: [string, string][] = [];
    for (let m = 0; m < o.merges; m++) {
      const pairs = new Map<string, number>();
      for (const w of words)
        for (let i = 0; i + 1 < w.sym.length; i++) {
          const k = w.sym[i] + '\u0000' + w.sym[i + 1];
          pairs.set(k, (pairs.get(k) ?? 0) + w.n);
        }
      let best = '';
      let bestN = 1; // a pair seen once is no merge worth learning
      for (const [k, n] of pairs) if (n > bestN || (n === bestN && best !== '' && k < best)) (best = k), (bestN = n);
      if (best === '') break;
      const [a, b] = best.split('\u0000');
      merges.push([a, b]);
      vocab.push(a + b);
      for (const w of words) {
        const out: string[] = [];
        for (let i = 0; i < w.sym.length; i++) {
          if (i + 1 < w.sym.length && w.sym[i] === a && w.sym[i + 1] === b) out.push(a + b), i++;
          else out.push(w.sym[i]);
        }
        w.sym = out;
      }
    }
    const specials = o.specials ?? ['<|endoftext|>'];
    if (specials.length === 0) throw new UsageError('a BPE tokenizer needs at least one special token (EOS)');
    if (o.bosToken && !specials.includes(o.bosToken)) throw new UsageError(`BOS ${o.bosToken} is not one of the special tokens`);
    if (o.addBos && !o.bosToken) throw new UsageError('addBos needs a bosToken');
    return new ByteBpe([...vocab, ...specials], merges, specials, o.bosToken ?? null, o.addBos ?? false);
  }

  tokenizerJson(): object {
    const special = (content: string) => ({
      id: this.id(content),
      content,
      single_word: false,
      lstrip: false,
      rstrip: false,
      normalized: false,
      special: true,
    });
    const base = this.vocab.length - this.specials.length;
    const bos = this.bosToken!;
    const postProcessor = this.addBos
      ? {
          type: 'TemplateProcessing',
          single: [{ SpecialToken: { id: bos, type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }],
          pair: [
            { SpecialToken: { id: bos, type_id: 0 } },
            { Sequence: { id: 'A', type_id: 0 } },
            { SpecialToken: { id: bos, type_id: 1 } },
            { Sequence: { id: 'B', type_id: 1 } },
          ],
          special_tokens: { [bos]: { id: bos, ids: [this.id(bos)], tokens: [bos] } },
        }
      : { type: 'ByteLevel', add_prefix_space: false, trim_offsets: false, use_regex: true };
    return {
      version: '1.0',
      truncation: null,
      padding: null,
      added_tokens: this.specials.map(special),
      normalizer: null,
      pre_tokenizer: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true },
      post_processor: postProcessor,
      decoder: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true },
      model: {
        type: 'BPE',
        dropout: null,
        unk_token: null,
        continuing_subword_prefix: null,
        end_of_word_suffix: null,
        fuse_unk: false,
        byte_fallback: false,
        ignore_merges: false,
        vocab: Object.fromEntries(this.vocab.slice(0, base).map((t, i) => [t, i])),
        merges: this.merges.map(([a, b]) => `${a} ${b}`),
      },
    };
  }

  tokenizerConfigJson(maxLength: number): object {
    const eos = this.specials[0];
    return {
      tokenizer_class: 'PreTrainedTokenizerFast',
      bos_token: this.bosToken ?? eos,
      eos_token: eos,
      pad_token: eos,
      unk_token: null,
      clean_up_tokenization_spaces: false,
      model_max_length: maxLength,
      padding_side: 'left',
    };
  }
}
