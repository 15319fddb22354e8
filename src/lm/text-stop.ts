/**
 * Tools fire on decoded text, not on a token id: with a BPE tokenizer "=" lives inside
 * tokens such as " =", so waiting for the id of "=" never fires. A text trigger decodes a
 * row's text when its last token's text contains the trigger character (a per-id cache keeps
 * that cheap) and asks the tool whether the text now ends the way it needs.
 */
import type { Tokenizer } from './tokenizer.js';

export type TextTrigger = (ids: ArrayLike<number>) => boolean;

/** fires(text) is asked only when the last token's text contains `char`. */
export function textTrigger(tok: Tokenizer, char: string, fires: (text: string) => boolean): TextTrigger {
  const hasChar = new Map<number, boolean>();
  return (ids) => {
    if (ids.length === 0) return false;
    const last = ids[ids.length - 1];
    let h = hasChar.get(last);
    if (h === undefined) hasChar.set(last, (h = tok.decode([last]).includes(char)));
    return h && fires(tok.decode(ids));
  };
}
