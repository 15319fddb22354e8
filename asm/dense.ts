// Dense layer y[rows × dout] = act(x[rows × din] · W[din × dout] + b), f32x4 SIMD over the
// output columns, skipping zero inputs (after a ReLU about half are). Used by the LM head's
// sampler hook (src/lm/head-kernel.ts), where a tensor library's per-op overhead would cost
// more than the product. Byte addresses come from the caller, which owns the layout.

export function dense(x: usize, rows: i32, din: i32, W: usize, dout: i32, b: usize, y: usize, relu: i32): void {
  const vec = dout & ~3;
  const rowBytes = (<usize>dout) << 2;
  for (let r = 0; r < rows; r++) {
    const yr = y + <usize>r * rowBytes;
    memory.copy(yr, b, rowBytes);
    const xr = x + ((<usize>r * <usize>din) << 2);
    for (let i = 0; i < din; i++) {
      const xi = load<f32>(xr + (<usize>i << 2));
      if (xi == 0) continue;
      const s = f32x4.splat(xi);
      const wr = W + <usize>i * rowBytes;
      let c = 0;
      for (; c < vec; c += 4) {
        const o = <usize>c << 2;
        v128.store(yr + o, f32x4.add(v128.load(yr + o), f32x4.mul(s, v128.load(wr + o))));
      }
      for (; c < dout; c++) {
        const o = <usize>c << 2;
        store<f32>(yr + o, load<f32>(yr + o) + xi * load<f32>(wr + o));
      }
    }
    if (relu) {
      const zero = f32x4.splat(0);
      let c = 0;
      for (; c < vec; c += 4) v128.store(yr + (<usize>c << 2), f32x4.max(v128.load(yr + (<usize>c << 2)), zero));
      for (; c < dout; c++) if (load<f32>(yr + (<usize>c << 2)) < 0) store<f32>(yr + (<usize>c << 2), 0);
    }
  }
}
