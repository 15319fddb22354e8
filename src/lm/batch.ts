/** Packing token rows into left-padded batches, and log-softmax helpers over Float32 logits. */

export interface Packed {
  batch: number;
  len: number;
  /** [B×len] ids, pads on the left */
  ids: Int32Array;
  /** [B×len] 1 for real tokens */
  mask: Uint8Array;
  /** per row: number of pads on the left */
  pad: Int32Array;
}

export function packLeft(rows: ArrayLike<number>[], padId: number, len = Math.max(1, ...rows.map((r) => r.length))): Packed {
  const B = rows.length;
  const ids = new Int32Array(B * len).fill(padId);
  const mask = new Uint8Array(B * len);
  const pad = new Int32Array(B);
  rows.forEach((r, b) => {
    if (r.length > len) throw new Error(`row of ${r.length} tokens does not fit ${len}`);
    pad[b] = len - r.length;
    for (let i = 0; i < r.length; i++) {
      ids[b * len + pad[b] + i] = r[i];
      mask[b * len + pad[b] + i] = 1;
    }
  });
  return { batch: B, len, ids, mask, pad };
}
