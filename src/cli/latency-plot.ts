// The latency percentile plot of `fastcgi-engine bench --plot`: HdrHistogram's classic percentile-distribution
// chart as a standalone SVG (no scripts, fonts or other external resources). x is the percentile on a log scale
// of 1/(1-p) (0 %, 90 %, 99 %, 99.9 %, … evenly spaced), y the latency in ms, linear. Pure: plain data in, an
// SVG string out; percentileDistribution() reads the points from a histogram.
import type { Histogram } from 'hdr-histogram-js';

/** One point of the percentile distribution. */
export interface PercentilePoint {
  /** The percentile as a fraction, 0 to 1 (1 = the maximum). */
  readonly percentile: number;
  /** The latency at that percentile, in ms. */
  readonly valueMs: number;
}

export interface LatencyPlotData {
  /** First line, bold (mode, address, req/s). */
  readonly title: string;
  /** Lines under the title (counts, percentiles), optional; two fit above the plot. */
  readonly subtitle?: string | readonly string[];
  /** How many values the histogram holds: ticks go no further than the percentiles this many samples support. */
  readonly count: number;
  /** Percentile distribution in increasing percentile order, as percentileDistribution() returns it. */
  readonly points: readonly PercentilePoint[];
  /** The generator's own floor (bench --calibrate, its p50 in ms): drawn as a dashed line, labelled. */
  readonly floorMs?: number | undefined;
}

/** Layout, in SVG user units (px). */
export const PLOT = { width: 900, height: 540, left: 80, right: 860, top: 84, bottom: 464 } as const;

/**
 * percentileDistribution reads the histogram's percentile distribution through its public API
 * (outputPercentileDistribution: HdrHistogram's exponentially finer steps towards 100 %, `ticksPerHalf` per
 * halving of the distance), in ms. Values are the upper ends of their buckets, capped at the recorded maximum.
 */
export function percentileDistribution(histogram: Histogram, unitsPerMs = 1000, ticksPerHalf = 5): PercentilePoint[] {
  if (histogram.totalCount === 0) return [];
  const maxMs = histogram.maxValue / unitsPerMs;
  const points: PercentilePoint[] = [];
  // "       Value     Percentile TotalCount 1/(1-Percentile)": the last row (100 %) has no fourth column.
  for (const line of histogram.outputPercentileDistribution(ticksPerHalf, unitsPerMs).split('\n')) {
    const m = /^\s*(\d+(?:\.\d+)?)\s+(\d+(?:\.\d+)?)\s+\d+(?:\s+\S+)?\s*$/.exec(line);
    if (m === null) continue;
    points.push({ percentile: Math.min(1, Number(m[2])), valueMs: Math.min(Number(m[1]), maxMs) });
  }
  return points;
}

/** escapeXml makes text safe in XML character data and attribute values; characters XML 1.0 forbids become U+FFFD. */
export function escapeXml(text: string): string {
  return text.replace(
    /[&<>"']|[\u0000-\u0008\u000b\u000c\u000e-\u001f\ufffe\uffff]|[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g,
    (c) => {
      switch (c) {
        case '&':
          return '&amp;';
        case '<':
          return '&lt;';
        case '>':
          return '&gt;';
        case '"':
          return '&quot;';
        case "'":
          return '&apos;';
        default:
          return '\ufffd';
      }
    },
  );
}

/** niceTicks: 0, step, 2·step, … up to the first multiple ≥ max, with step 1, 2 or 5 × 10^k and about `target` steps. */
export function niceTicks(max: number, target = 5): { ticks: number[]; decimals: number } {
  if (!(max > 0) || !Number.isFinite(max)) return { ticks: [0, 1], decimals: 0 };
  const rough = max / target;
  const exponent = Math.floor(Math.log10(rough));
  const base = 10 ** exponent;
  const mantissa = rough / base;
  const step = (mantissa <= 1 ? 1 : mantissa <= 2 ? 2 : mantissa <= 5 ? 5 : 10) * base;
  const n = Math.max(1, Math.ceil(max / step - 1e-9));
  const decimals = Math.max(0, -Math.floor(Math.log10(step) + 1e-9));
  // Multiples computed as i × step and rounded to the label's precision: no 0.30000000000000004.
  const ticks = Array.from({ length: n + 1 }, (_, i) => Number((i * step).toFixed(decimals)));
  return { ticks, decimals };
}

/**
 * percentileTicks: 0 %, 90 %, 99 %, … (x = 1/(1-p) = 1, 10, 100, …) up to the finest percentile `count` samples
 * can tell apart (1 - 1/count).
 */
export function percentileTicks(count: number): { x: number; label: string }[] {
  const ticks = [{ x: 1, label: '0%' }];
  for (let k = 1; k <= 12 && 10 ** k <= count; k++)
    ticks.push({ x: 10 ** k, label: `${(100 - 100 / 10 ** k).toFixed(Math.max(0, k - 2))}%` });
  return ticks;
}

function fmt(n: number): string {
  return String(Math.round(n * 10) / 10);
}

/** renderLatencyPlot returns the chart as a standalone SVG document. */
export function renderLatencyPlot(data: LatencyPlotData): string {
  const { width, height, left, right, top, bottom } = PLOT;
  const out: string[] = [
    '<?xml version="1.0" encoding="UTF-8"?>',
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="13" fill="#222">`,
    `<title>${escapeXml(data.title)}</title>`,
    `<rect x="0" y="0" width="${width}" height="${height}" fill="#ffffff"/>`,
    `<text class="title" x="${left}" y="30" font-size="16" font-weight="bold">${escapeXml(data.title)}</text>`,
  ];
  const subtitle =
    data.subtitle === undefined ? [] : typeof data.subtitle === 'string' ? [data.subtitle] : data.subtitle;
  subtitle.forEach((line, k) =>
    out.push(`<text class="subtitle" x="${left}" y="${52 + 18 * k}" fill="#555">${escapeXml(line)}</text>`),
  );
  const points = data.points.filter((p) => Number.isFinite(p.valueMs) && p.percentile >= 0 && p.percentile <= 1);
  const frame = `<rect class="frame" x="${left}" y="${top}" width="${right - left}" height="${bottom - top}" fill="none" stroke="#888"/>`;
  const axisLabels = [
    `<text class="x-label" x="${fmt((left + right) / 2)}" y="${height - 22}" text-anchor="middle">Percentile</text>`,
    `<text class="y-label" x="22" y="${fmt((top + bottom) / 2)}" text-anchor="middle" transform="rotate(-90 22 ${fmt((top + bottom) / 2)})">Latency (ms)</text>`,
  ];
  if (points.length === 0) {
    out.push(
      frame,
      `<text class="no-samples" x="${fmt((left + right) / 2)}" y="${fmt((top + bottom) / 2)}" text-anchor="middle" font-size="18" fill="#888">no samples</text>`,
      ...axisLabels,
      '</svg>',
      '',
    );
    return out.join('\n');
  }

  // x: log10(1/(1-p)) from 0 (p = 0) to log10(xMax); p = 1 (the maximum) sits at the right edge.
  let finiteMax = 1;
  for (const p of points) if (p.percentile < 1) finiteMax = Math.max(finiteMax, 1 / (1 - p.percentile));
  const xMax = Math.max(10, data.count, finiteMax);
  const xOf = (percentile: number): number => {
    const inverse = percentile >= 1 ? xMax : Math.min(xMax, 1 / (1 - percentile));
    return left + (Math.log10(inverse) / Math.log10(xMax)) * (right - left);
  };
  const floor = data.floorMs !== undefined && Number.isFinite(data.floorMs) && data.floorMs >= 0 ? data.floorMs : null;
  const maxMs = Math.max(
    points.reduce((m, p) => Math.max(m, p.valueMs), 0),
    floor ?? 0,
  );
  const { ticks: yTicks, decimals } = niceTicks(maxMs);
  const yTop = yTicks[yTicks.length - 1]!;
  const yOf = (ms: number): number => bottom - (ms / yTop) * (bottom - top);

  out.push('<g class="grid" stroke="#e4e4e4" stroke-width="1">');
  for (const t of percentileTicks(data.count)) {
    const x = fmt(xOf(1 - 1 / t.x));
    out.push(`<line x1="${x}" y1="${top}" x2="${x}" y2="${bottom}"/>`);
  }
  for (const t of yTicks) {
    const y = fmt(yOf(t));
    out.push(`<line x1="${left}" y1="${y}" x2="${right}" y2="${y}"/>`);
  }
  out.push('</g>', frame);
  for (const t of percentileTicks(data.count)) {
    out.push(
      `<text class="x-tick" x="${fmt(xOf(1 - 1 / t.x))}" y="${bottom + 20}" text-anchor="middle">${t.label}</text>`,
    );
  }
  for (const t of yTicks) {
    out.push(
      `<text class="y-tick" x="${left - 8}" y="${fmt(yOf(t) + 4)}" text-anchor="end">${t.toFixed(decimals)}</text>`,
    );
  }

  // One point per tenth of a pixel: points that round to the same x merge, keeping the higher latency (the
  // smaller SVG y), so the line stays monotonic and the file small.
  const xy: [number, number][] = [];
  for (const p of points) {
    const x = Math.round(xOf(p.percentile) * 10) / 10;
    const y = Math.round(yOf(p.valueMs) * 10) / 10;
    if (xy.length > 0 && xy[xy.length - 1]![0] >= x) xy[xy.length - 1]![1] = Math.min(xy[xy.length - 1]![1], y);
    else xy.push([x, y]);
  }
  if (floor !== null) {
    const y = fmt(yOf(floor));
    out.push(
      `<line class="floor" x1="${left}" y1="${y}" x2="${right}" y2="${y}" stroke="#c0392b" stroke-width="1.5" stroke-dasharray="6 4"/>`,
      `<text class="floor-label" x="${right - 6}" y="${fmt(yOf(floor) - 6)}" text-anchor="end" fill="#c0392b">generator floor p50 ${escapeXml(String(floor))} ms</text>`,
    );
  }
  out.push(
    `<polyline class="latency" fill="none" stroke="#1f66c9" stroke-width="2" stroke-linejoin="round" points="${xy.map(([x, y]) => `${x},${y}`).join(' ')}"/>`,
    ...axisLabels,
    '</svg>',
    '',
  );
  return out.join('\n');
}
