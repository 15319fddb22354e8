import { REWARD_CONSTANTS, type HypergridConfig } from './hypergrid.js';

/**
 * Closed form of the hypergrid partition function: R factorizes into per-coordinate
 * indicators, so Z = R0·H^D + R1·c1^D + R2·c2^D with c1 = #{x : |x/(H−1) − ½| > ¼} and
 * c2 = #{x : 0.3 < |x/(H−1) − ½| < 0.4} counted on one axis.
 */
export function hypergridLogZ({ ndim, height, reward }: HypergridConfig): number {
  const [r0, r1, r2] = REWARD_CONSTANTS[reward];
  let c1 = 0,
    c2 = 0;
  for (let x = 0; x < height; x++) {
    const ax = Math.abs(x / (height - 1) - 0.5);
    if (ax > 0.25) c1++;
    if (ax > 0.3 && ax < 0.4) c2++;
  }
  return Math.log(r0 * height ** ndim + r1 * c1 ** ndim + r2 * c2 ** ndim);
}
