import type { TopLevelSpec } from 'vega-lite';

type Vega = typeof import('vega');
type VegaLite = typeof import('vega-lite');

let libs: Promise<[Vega, VegaLite]> | undefined;

/** vega is imported on first use so that CLI commands that never draw do not pay for it. */
function load(): Promise<[Vega, VegaLite]> {
  libs ??= Promise.all([import('vega'), import('vega-lite')]);
  return libs;
}

/**
 * Compiles a vega-lite spec and renders it to an SVG string in Node: the headless 'none'
 * renderer needs no canvas and no DOM. Data is always inline, so the loader refuses every
 * URL: a chart that tried to fetch anything would be a bug, and the page must work offline.
 */
export async function renderSvg(vlSpec: TopLevelSpec, idPrefix = ''): Promise<string> {
  const [vega, vl] = await load();
  const { spec } = vl.compile(vlSpec);
  const loader = vega.loader();
  loader.sanitize = (uri: string) => Promise.reject(new Error(`report charts embed their data; refusing to load ${uri}`));
  const view = new vega.View(vega.parse(spec), { renderer: 'none', loader });
  try {
    const svg = await view.toSVG();
    return idPrefix ? prefixIds(svg, idPrefix) : svg;
  } finally {
    view.finalize();
  }
}

/**
 * vega numbers clip paths and gradients per view (clip1, clip2, ...), so two charts inlined
 * in one HTML page would share ids and `url(#clip1)` in the second chart would resolve to
 * the first chart's clip rectangle. Prefixing every id and its references keeps them apart.
 */
export function prefixIds(svg: string, prefix: string): string {
  const ids = new Set<string>();
  for (const m of svg.matchAll(/\sid="([^"]+)"/g)) ids.add(m[1]);
  if (!ids.size) return svg;
  return svg
    .replace(/(\sid=")([^"]+)"/g, (all, pre: string, id: string) => (ids.has(id) ? `${pre}${prefix}${id}"` : all))
    .replace(/url\(#([^)]+)\)/g, (all, id: string) => (ids.has(id) ? `url(#${prefix}${id})` : all))
    .replace(/(href=")#([^"]+)"/g, (all, pre: string, id: string) => (ids.has(id) ? `${pre}#${prefix}${id}"` : all));
}
