/**
 * tfjs building blocks with hand-written gradients. docs/design.md §3: tfjs-wasm runs matMul on
 * its fast XNNPACK path only for plain 2-D products without transpose flags, and its axis-0
 * reductions are slow; the built-in gradients use both. These versions transpose explicitly
 * and compute bias / gain gradients as a ones-row matMul.
 */
import { tf } from '../core/backend.js';

type T2 = tf.Tensor2D;

/** x·W for 2-D x [N,in], W [in,out]. */
export const matMul2 = tf.customGrad(((x: T2, w: T2, save: tf.GradSaveFunc) => {
  save([x, w]);
  return {
    value: tf.matMul(x, w),
    gradFunc: (dy: T2, saved: tf.Tensor[]) => {
      const [xs, ws] = saved as T2[];
      return [tf.matMul(dy, tf.transpose(ws)), tf.matMul(tf.transpose(xs), dy)];
    },
  };
}) as any) as (x: T2, w: T2) => T2;

/** x·W + b for 2-D x. */
export const linear = tf.customGrad(((x: T2, w: T2, b: tf.Tensor1D, save: tf.GradSaveFunc) => {
  save([x, w]);
  return {
    value: tf.add(tf.matMul(x, w), b),
    gradFunc: (dy: T2, saved: tf.Tensor[]) => {
      const [xs, ws] = saved as T2[];
      const ones = tf.ones([1, dy.shape[0]]) as T2;
      return [tf.matMul(dy, tf.transpose(ws)), tf.matMul(tf.transpose(xs), dy), tf.reshape(tf.matMul(ones, dy), [dy.shape[1]])];
    },
  };
}) as any) as (x: T2, w: T2, b: tf.Tensor1D) => T2;

/** LayerNorm over the last axis of 2-D x [N,d] with gain g and bias b (ONNX LayerNormalization). */
export function layerNorm(x: T2, g: tf.Tensor1D, b: tf.Tensor1D, eps: number): T2 {
  return layerNormGrad(x, g, b, tf.scalar(eps));
}

const layerNormGrad = tf.customGrad(((x: T2, g: tf.Tensor1D, b: tf.Tensor1D, epsT: tf.Scalar, save: tf.GradSaveFunc) => {
  const d = x.shape[1];
  const mu = tf.mean(x, 1, true);
  const xc = tf.sub(x, mu);
  const variance = tf.mean(tf.square(xc), 1, true);
  const rstd = tf.rsqrt(tf.add(variance, epsT));
  const xhat = tf.mul(xc, rstd) as T2;
  save([xhat, rstd, g]);
  return {
    value: tf.add(tf.mul(xhat, g), b),
    gradFunc: (dy: T2, saved: tf.Tensor[]) => {
      const [xh, rs, gs] = saved as [T2, tf.Tensor2D, tf.Tensor1D];
      const ones = tf.ones([1, dy.shape[0]]) as T2;
      const dg = tf.reshape(tf.matMul(ones, tf.mul(dy, xh) as T2), [d]);
      const db = tf.reshape(tf.matMul(ones, dy), [d]);
      const dxh = tf.mul(dy, gs);
      const dx = tf.mul(rs, tf.sub(tf.sub(dxh, tf.mean(dxh, 1, true)), tf.mul(xh, tf.mean(tf.mul(dxh, xh), 1, true))));
      return [dx, dg, db, tf.zerosLike(epsT)];
    },
  };
}) as any) as (x: T2, g: tf.Tensor1D, b: tf.Tensor1D, eps: tf.Scalar) => T2;

/** GELU ≈ x·σ(1.702x), the form the ONNX writer emits (gpt.ts). */
export function gelu(x: tf.Tensor): tf.Tensor {
  return tf.mul(x, tf.sigmoid(tf.mul(x, 1.702)));
}

/** Batched a·b for rank-3 tensors [G,m,k]·[G,k,n] with explicit-transpose gradients. */
export const bmm = tf.customGrad(((a: tf.Tensor3D, b: tf.Tensor3D, save: tf.GradSaveFunc) => {
  save([a, b]);
  return {
    value: tf.matMul(a, b),
    gradFunc: (dy: tf.Tensor3D, saved: tf.Tensor[]) => {
      const [as, bs] = saved as tf.Tensor3D[];
      return [tf.matMul(dy, tf.transpose(bs, [0, 2, 1])), tf.matMul(tf.transpose(as, [0, 2, 1]), dy)];
    },
  };
}) as any) as (a: tf.Tensor3D, b: tf.Tensor3D) => tf.Tensor3D;

/** x + b for x [N,V], b [V]; the bias gradient as a ones-row matMul (no axis-0 reduction). */
export const addRowBias = tf.customGrad(((x: T2, b: tf.Tensor1D, save: tf.GradSaveFunc) => {
  save([]);
  return {
    value: tf.add(x, b),
    gradFunc: (dy: T2) => [dy, tf.reshape(tf.matMul(tf.ones([1, dy.shape[0]]) as T2, dy), [dy.shape[1]])],
  };
}) as any) as (x: T2, b: tf.Tensor1D) => T2;

/**
 * Frozen-weight forms for the LoRA forward: the weights are plain tensors that never receive a
 * gradient, but `linear` / `matMul2` / `layerNorm` compute every input's gradient at once
 * (xᵀ·dy per frozen matrix, ones-row products per gain and bias: a third of the backward).
 * These take only the activation as a differentiable input (the weights are closed over, not saved: saving copies a tensor, so they must be model parameters
 * that outlive the backward — a tensor made inside the tape is gone by then), and
 * its gradient is computed exactly as above. A weight that is a trainable tf.Variable (the
 * tiny-LM builder trains every weight) goes through the full forms.
 */
const trainable = (...ts: tf.Tensor[]) => ts.some((t) => t instanceof tf.Variable && t.trainable);

/** x·W with W frozen unless it is a trainable variable. */
export function matMulW(x: T2, w: T2): T2 {
  if (trainable(w)) return matMul2(x, w);
  return tf.customGrad(((xi: T2, save: tf.GradSaveFunc) => {
    save([]);
    return { value: tf.matMul(xi, w), gradFunc: (dy: T2) => [tf.matMul(dy, tf.transpose(w))] };
  }) as any)(x) as T2;
}

/** x·W + b with W, b frozen unless trainable variables. */
export function linearW(x: T2, w: T2, b: tf.Tensor1D): T2 {
  if (trainable(w, b)) return linear(x, w, b);
  return tf.customGrad(((xi: T2, save: tf.GradSaveFunc) => {
    save([]);
    return { value: tf.add(tf.matMul(xi, w), b), gradFunc: (dy: T2) => [tf.matMul(dy, tf.transpose(w))] };
  }) as any)(x) as T2;
}

/** LayerNorm with g, b frozen unless trainable variables (the dx of layerNorm above). */
export function layerNormW(x: T2, g: tf.Tensor1D, b: tf.Tensor1D, eps: number): T2 {
  if (trainable(g, b)) return layerNorm(x, g, b, eps);
  const epsT = tf.scalar(eps);
  return tf.customGrad(((xi: T2, save: tf.GradSaveFunc) => {
    const mu = tf.mean(xi, 1, true);
    const xc = tf.sub(xi, mu);
    const variance = tf.mean(tf.square(xc), 1, true);
    const rstd = tf.rsqrt(tf.add(variance, epsT));
    const xhat = tf.mul(xc, rstd) as T2;
    save([xhat, rstd]);
    return {
      value: tf.add(tf.mul(xhat, g), b),
      gradFunc: (dy: T2, saved: tf.Tensor[]) => {
        const [xh, rs] = saved as [T2, T2];
        const dxh = tf.mul(dy, g);
        return [tf.mul(rs, tf.sub(tf.sub(dxh, tf.mean(dxh, 1, true)), tf.mul(xh, tf.mean(tf.mul(dxh, xh), 1, true))))];
      },
    };
  }) as any)(x) as T2;
}

/** c·x for a constant (0/1 selection) c [M,N] and x [N,d]: only x gets a gradient, cᵀ·dy as in matMul2. */
export function matMulC(c: T2, x: T2): T2 {
  return tf.customGrad(((xi: T2, save: tf.GradSaveFunc) => {
    save([c]);
    return { value: tf.matMul(c, xi), gradFunc: (dy: T2, saved: tf.Tensor[]) => [tf.matMul(tf.transpose(saved[0]), dy)] };
  }) as any)(x) as T2;
}

/*
 * Tape-light forms of data-movement and elementwise ops for the LoRA forward: tfjs's own
 * gradients of add, mul and reshape copy their inputs when taped (to read their
 * shapes in the backward); these keep only the shapes. Same values, same gradients.
 */

/** a + b for tensors of the same shape. */
export function addT<T extends tf.Tensor>(a: T, b: T): T {
  if (a.shape.join() !== b.shape.join()) throw new Error(`addT: shapes ${a.shape} and ${b.shape} differ`);
  return tf.customGrad(((ai: T, bi: T, save: tf.GradSaveFunc) => {
    save([]);
    return { value: tf.add(ai, bi), gradFunc: (dy: T) => [dy, dy] };
  }) as any)(a, b) as T;
}

/** x·s for a number s. */
export function scaleT<T extends tf.Tensor>(x: T, s: number): T {
  return tf.customGrad(((xi: T, save: tf.GradSaveFunc) => {
    save([]);
    return { value: tf.mul(xi, s), gradFunc: (dy: T) => [tf.mul(dy, s)] };
  }) as any)(x) as T;
}

/** x reshaped. */
export function reshapeT<R extends tf.Rank>(x: tf.Tensor, shape: number[]): tf.Tensor<R> {
  const from = x.shape;
  return tf.customGrad(((xi: tf.Tensor, save: tf.GradSaveFunc) => {
    save([]);
    return { value: tf.reshape(xi, shape), gradFunc: (dy: tf.Tensor) => [tf.reshape(dy, from)] };
  }) as any)(x) as tf.Tensor<R>;
}
