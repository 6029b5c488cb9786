// The SVG latency plot of `bench --plot` (src/cli/latency-plot.ts), without a load: well-formed XML (a strict
// little parser below: one root, balanced tags, quoted attributes, only the five named entities and character
// references, no stray '<' or '&'), monotonic axis ticks, a polyline inside the plot area that rises left to
// right, escaped text, and the empty case.
import * as hdr from 'hdr-histogram-js';
import { describe, expect, it } from 'vitest';
import {
  PLOT,
  escapeXml,
  niceTicks,
  percentileDistribution,
  percentileTicks,
  renderLatencyPlot,
  type PercentilePoint,
} from '../../src/cli/latency-plot';

interface XmlElement {
  name: string;
  attributes: Record<string, string>;
  children: XmlElement[];
  text: string;
}

const NAME_START = (c: string): boolean => (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c === '_' || c === ':';
const NAME_CHAR = (c: string): boolean => NAME_START(c) || (c >= '0' && c <= '9') || c === '-' || c === '.';
const SPACE = (c: string | undefined): boolean => c === ' ' || c === '\n' || c === '\t' || c === '\r';

/** Decodes entity and character references in `raw`; throws on a bare '&', an unknown entity or a '<'. */
function decode(raw: string, where: string): string {
  let out = '';
  for (let i = 0; i < raw.length; i++) {
    const c = raw[i]!;
    if (c === '<') throw new Error(`raw '<' in ${where}`);
    if (c !== '&') {
      out += c;
      continue;
    }
    const end = raw.indexOf(';', i);
    if (end === -1) throw new Error(`bare '&' in ${where}`);
    const ref = raw.slice(i + 1, end);
    const named: Record<string, string> = { amp: '&', lt: '<', gt: '>', quot: '"', apos: "'" };
    if (ref in named) out += named[ref];
    else if (
      ref.startsWith('#x') &&
      ref.length > 2 &&
      [...ref.slice(2)].every((d) => '0123456789abcdefABCDEF'.includes(d))
    )
      out += String.fromCodePoint(parseInt(ref.slice(2), 16));
    else if (ref.startsWith('#') && ref.length > 1 && [...ref.slice(1)].every((d) => d >= '0' && d <= '9'))
      out += String.fromCodePoint(Number(ref.slice(1)));
    else throw new Error(`unknown entity &${ref}; in ${where}`);
    i = end;
  }
  return out;
}

/** A strict parser for the XML subset an SVG file uses (declaration, elements, attributes, text); throws if not well-formed. */
function parseXml(xml: string): XmlElement {
  let i = 0;
  if (xml.startsWith('<?xml')) {
    i = xml.indexOf('?>');
    if (i === -1) throw new Error('unterminated XML declaration');
    i += 2;
  }
  for (const c of xml) {
    const code = c.codePointAt(0)!;
    if ((code < 0x20 && c !== '\n' && c !== '\t' && c !== '\r') || code === 0xfffe || code === 0xffff)
      throw new Error(`character U+${code.toString(16)} is not allowed in XML`);
  }
  const readName = (): string => {
    const start = i;
    if (!NAME_START(xml[i] ?? '')) throw new Error(`expected a name at ${i}: ${xml.slice(i, i + 20)}`);
    while (NAME_CHAR(xml[i] ?? '')) i++;
    return xml.slice(start, i);
  };
  const skipSpace = (): void => {
    while (SPACE(xml[i])) i++;
  };
  const stack: XmlElement[] = [];
  let root: XmlElement | null = null;
  while (i < xml.length) {
    if (xml[i] !== '<') {
      const next = xml.indexOf('<', i);
      const raw = xml.slice(i, next === -1 ? xml.length : next);
      const text = decode(raw, 'text');
      if (stack.length === 0) {
        if (text.trim() !== '') throw new Error(`text outside the root element: ${text.slice(0, 20)}`);
      } else stack[stack.length - 1]!.text += text;
      i = next === -1 ? xml.length : next;
      continue;
    }
    if (xml.startsWith('<!--', i)) {
      const end = xml.indexOf('-->', i);
      if (end === -1) throw new Error('unterminated comment');
      i = end + 3;
      continue;
    }
    if (xml[i + 1] === '/') {
      i += 2;
      const name = readName();
      skipSpace();
      if (xml[i] !== '>') throw new Error(`expected '>' closing </${name}`);
      i++;
      const open = stack.pop();
      if (open === undefined || open.name !== name)
        throw new Error(`</${name}> does not close <${open?.name ?? '(nothing)'}>`);
      continue;
    }
    i++;
    const element: XmlElement = { name: readName(), attributes: {}, children: [], text: '' };
    if (stack.length === 0 && root !== null) throw new Error(`second root element <${element.name}>`);
    for (;;) {
      const before = i;
      skipSpace();
      if (xml[i] === '>' || xml.startsWith('/>', i)) break;
      if (i === before) throw new Error(`expected a space before the attribute at ${i} in <${element.name}>`);
      const attr = readName();
      if (attr in element.attributes) throw new Error(`duplicate attribute ${attr} in <${element.name}>`);
      skipSpace();
      if (xml[i] !== '=') throw new Error(`expected '=' after ${attr} in <${element.name}>`);
      i++;
      skipSpace();
      const quote = xml[i];
      if (quote !== '"' && quote !== "'") throw new Error(`unquoted value of ${attr} in <${element.name}>`);
      const end = xml.indexOf(quote, i + 1);
      if (end === -1) throw new Error(`unterminated value of ${attr}`);
      element.attributes[attr] = decode(xml.slice(i + 1, end), `attribute ${attr}`);
      i = end + 1;
    }
    if (stack.length > 0) stack[stack.length - 1]!.children.push(element);
    else root = element;
    if (xml[i] === '>') {
      i++;
      stack.push(element);
    } else i += 2;
  }
  if (stack.length > 0) throw new Error(`<${stack[stack.length - 1]!.name}> is never closed`);
  if (root === null) throw new Error('no root element');
  return root;
}

function all(root: XmlElement, predicate: (e: XmlElement) => boolean): XmlElement[] {
  const found: XmlElement[] = [];
  const walk = (e: XmlElement): void => {
    if (predicate(e)) found.push(e);
    e.children.forEach(walk);
  };
  walk(root);
  return found;
}

const byClass = (root: XmlElement, name: string): XmlElement[] => all(root, (e) => e.attributes.class === name);

function histogramOf(values: number[]): hdr.Histogram {
  const h = hdr.build({
    lowestDiscernibleValue: 1,
    highestTrackableValue: 3_600_000_000,
    numberOfSignificantValueDigits: 3,
  });
  for (const v of values) h.recordValue(v);
  return h;
}

/** A long-tailed latency sample in µs, deterministic (a fixed LCG). */
function sample(n: number): number[] {
  let seed = 12345;
  const random = (): number => {
    seed = (seed * 1103515245 + 12345) % 2 ** 31;
    return seed / 2 ** 31;
  };
  return Array.from({ length: n }, () => Math.round(200 + 300 * random() + (random() < 0.01 ? 20_000 * random() : 0)));
}

function checkPlot(svg: string, count: number): { root: XmlElement; points: [number, number][] } {
  const root = parseXml(svg);
  expect(root.name).toBe('svg');
  expect(root.attributes.xmlns).toBe('http://www.w3.org/2000/svg');
  expect(root.attributes['font-family']).toBe('sans-serif');
  // Standalone: nothing fetched from elsewhere.
  expect(svg).not.toMatch(/href|<image|<script|@import|url\(/);

  const xTicks = byClass(root, 'x-tick');
  const xs = xTicks.map((t) => Number(t.attributes.x));
  expect(xTicks.map((t) => t.text)).toEqual(percentileTicks(count).map((t) => t.label));
  expect(xTicks[0]!.text).toBe('0%');
  for (let k = 1; k < xs.length; k++) expect(xs[k]!).toBeGreaterThan(xs[k - 1]!);
  for (const x of xs) {
    expect(x).toBeGreaterThanOrEqual(PLOT.left);
    expect(x).toBeLessThanOrEqual(PLOT.right);
  }

  const yTicks = byClass(root, 'y-tick');
  expect(yTicks.length).toBeGreaterThanOrEqual(2);
  const yValues = yTicks.map((t) => Number(t.text));
  const yPositions = yTicks.map((t) => Number(t.attributes.y));
  expect(yValues[0]).toBe(0);
  for (let k = 1; k < yTicks.length; k++) {
    expect(yValues[k]!).toBeGreaterThan(yValues[k - 1]!);
    expect(yPositions[k]!).toBeLessThan(yPositions[k - 1]!);
  }
  // Evenly spaced values (nice steps).
  const step = yValues[1]! - yValues[0]!;
  for (let k = 1; k < yValues.length; k++) expect(yValues[k]! - yValues[k - 1]!).toBeCloseTo(step, 9);

  const lines = all(root, (e) => e.name === 'polyline');
  expect(lines).toHaveLength(1);
  const points = lines[0]!.attributes
    .points!.trim()
    .split(/\s+/)
    .map((pair) => pair.split(',').map(Number) as [number, number]);
  expect(points.length).toBeGreaterThanOrEqual(2);
  for (const [x, y] of points) {
    expect(x).toBeGreaterThanOrEqual(PLOT.left);
    expect(x).toBeLessThanOrEqual(PLOT.right);
    expect(y).toBeGreaterThanOrEqual(PLOT.top);
    expect(y).toBeLessThanOrEqual(PLOT.bottom);
  }
  for (let k = 1; k < points.length; k++) {
    expect(points[k]![0]).toBeGreaterThan(points[k - 1]![0]);
    // SVG y grows downwards: latency never decreases, so y never increases.
    expect(points[k]![1]).toBeLessThanOrEqual(points[k - 1]![1]);
  }
  // The line spans the whole percentile axis: 0 % at the left edge, the maximum at the right.
  expect(points[0]![0]).toBe(PLOT.left);
  expect(points[points.length - 1]![0]).toBe(PLOT.right);
  expect(byClass(root, 'x-label')[0]!.text).toBe('Percentile');
  expect(byClass(root, 'y-label')[0]!.text).toBe('Latency (ms)');
  return { root, points };
}

describe('latency plot', () => {
  it('percentileDistribution reads the histogram in ms, percentiles rising to 1 with the maximum last', () => {
    const values = sample(20_000);
    const h = histogramOf(values);
    const points = percentileDistribution(h, 1000);
    expect(points.length).toBeGreaterThan(50);
    expect(points[0]!.percentile).toBe(0);
    expect(points[points.length - 1]!.percentile).toBe(1);
    expect(points[points.length - 1]!.valueMs).toBe(Math.max(...values) / 1000);
    for (let k = 1; k < points.length; k++) {
      expect(points[k]!.percentile).toBeGreaterThan(points[k - 1]!.percentile);
      expect(points[k]!.valueMs).toBeGreaterThanOrEqual(points[k - 1]!.valueMs);
    }
    const p50 = points.find((p) => p.percentile >= 0.5)!;
    expect(p50.valueMs).toBeCloseTo(h.getValueAtPercentile(50) / 1000, 2);
    expect(percentileDistribution(histogramOf([]))).toEqual([]);
  });

  it('a run of 20 000 requests: well-formed SVG, ticks 0 %…99.99 %, a rising line inside the plot area', () => {
    const h = histogramOf(sample(20_000));
    const svg = renderLatencyPlot({
      title: 'closed loop against unix:/run/app.sock: 1234.5 req/s',
      subtitle: '20000 requests',
      count: h.totalCount,
      points: percentileDistribution(h),
    });
    const { root, points } = checkPlot(svg, 20_000);
    expect(byClass(root, 'x-tick').map((t) => t.text)).toEqual(['0%', '90%', '99%', '99.9%', '99.99%']);
    expect(byClass(root, 'title')[0]!.text).toBe('closed loop against unix:/run/app.sock: 1234.5 req/s');
    expect(byClass(root, 'subtitle')[0]!.text).toBe('20000 requests');
    // The top y tick covers the maximum.
    const yTicks = byClass(root, 'y-tick').map((t) => Number(t.text));
    expect(yTicks[yTicks.length - 1]!).toBeGreaterThanOrEqual(h.maxValue / 1000);
    // The highest point (the maximum) touches the top of the value range it was scaled to, at most at the frame.
    expect(Math.min(...points.map(([, y]) => y))).toBeGreaterThanOrEqual(PLOT.top);
  });

  it('few samples: ticks stop at what the count supports', () => {
    for (const [n, labels] of [
      [1, ['0%']],
      [9, ['0%']],
      [10, ['0%', '90%']],
      [150, ['0%', '90%', '99%']],
      [1000, ['0%', '90%', '99%', '99.9%']],
      [1_000_000, ['0%', '90%', '99%', '99.9%', '99.99%', '99.999%', '99.9999%']],
    ] as const) {
      expect(percentileTicks(n).map((t) => t.label)).toEqual(labels);
    }
    for (const n of [1, 2, 7, 150]) {
      const h = histogramOf(sample(n));
      checkPlot(renderLatencyPlot({ title: `${n}`, count: n, points: percentileDistribution(h) }), n);
    }
  });

  it('all values equal: still a flat line on a non-empty y axis', () => {
    const h = histogramOf(Array.from({ length: 500 }, () => 750));
    const { points } = checkPlot(
      renderLatencyPlot({ title: 'flat', count: 500, points: percentileDistribution(h) }),
      500,
    );
    expect(new Set(points.map(([, y]) => y)).size).toBe(1);
  });

  it('niceTicks: 1-2-5 steps from 0 past the maximum, labels without float noise', () => {
    expect(niceTicks(3.101)).toEqual({ ticks: [0, 1, 2, 3, 4], decimals: 0 });
    expect(niceTicks(0.0734)).toEqual({ ticks: [0, 0.02, 0.04, 0.06, 0.08], decimals: 2 });
    expect(niceTicks(212.4).ticks).toEqual([0, 50, 100, 150, 200, 250]);
    expect(niceTicks(10).ticks).toEqual([0, 2, 4, 6, 8, 10]);
    expect(niceTicks(0.3).ticks).toEqual([0, 0.1, 0.2, 0.3]);
    expect(niceTicks(0)).toEqual({ ticks: [0, 1], decimals: 0 });
  });

  it('escapes text: an address with <&>\'" and control characters stays well-formed and reads back as written', () => {
    const title = `open loop at 100 req/s against unix:/tmp/<a&b>"'.sock: 99 req/s`;
    const h = histogramOf(sample(100));
    const svg = renderLatencyPlot({
      title,
      subtitle: 'x < y && y > z\u0001',
      count: 100,
      points: percentileDistribution(h),
    });
    const { root } = checkPlot(svg, 100);
    expect(svg).toContain('&lt;a&amp;b&gt;&quot;&apos;');
    expect(byClass(root, 'title')[0]!.text).toBe(title);
    expect(all(root, (e) => e.name === 'title')[0]!.text).toBe(title);
    expect(byClass(root, 'subtitle')[0]!.text).toBe('x < y && y > z\ufffd');
    expect(escapeXml('a\ud800b')).toBe('a\ufffdb');
    expect(escapeXml('😀')).toBe('😀');
  });

  it('no samples: a well-formed plot that says so', () => {
    const svg = renderLatencyPlot({ title: 'closed loop against 127.0.0.1:9000: 0 req/s', count: 0, points: [] });
    const root = parseXml(svg);
    expect(root.name).toBe('svg');
    expect(byClass(root, 'no-samples')[0]!.text).toBe('no samples');
    expect(all(root, (e) => e.name === 'polyline')).toHaveLength(0);
  });

  it('the strict checker rejects what is not well-formed', () => {
    for (const bad of [
      '<svg><g></svg>',
      '<svg a=1/>',
      '<svg>a & b</svg>',
      '<svg>a < b</svg>',
      '<svg a="1" a="2"/>',
      '<svg/><svg/>',
      '<svg>&nbsp;</svg>',
      '<svg>\u0001</svg>',
    ]) {
      expect(() => parseXml(bad), bad).toThrow();
    }
    expect(parseXml('<?xml version="1.0"?>\n<svg a="&lt;"><g/>t&#x41;</svg>\n')).toMatchObject({
      name: 'svg',
      attributes: { a: '<' },
      text: 'tA',
    });
  });

  it('ignores points it cannot place (NaN, outside 0..1)', () => {
    const points: PercentilePoint[] = [
      { percentile: 0, valueMs: 1 },
      { percentile: 0.5, valueMs: Number.NaN },
      { percentile: 0.9, valueMs: 2 },
      { percentile: 1.5, valueMs: 9 },
      { percentile: 1, valueMs: 3 },
    ];
    const { points: xy } = checkPlot(renderLatencyPlot({ title: 't', count: 100, points }), 100);
    expect(xy).toHaveLength(3);
    // With 10 samples 90 % is the last percentile they support: it shares the right edge with the maximum.
    expect(checkPlot(renderLatencyPlot({ title: 't', count: 10, points }), 10).points).toHaveLength(2);
  });
});
