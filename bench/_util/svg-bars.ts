// A horizontal bar chart as a standalone SVG file, written by hand (no chart library): one panel per measured
// case, each with its own scale, since values of different cases may differ by orders of magnitude.

export interface Bar {
  readonly label: string;
  /** null: not measured (drawn as "n/a"). */
  readonly value: number | null;
  /** Index into the palette: bars of one kind share a colour. */
  readonly series: number;
}

export interface BarPanel {
  readonly title: string;
  readonly bars: readonly Bar[];
}

export interface BarChart {
  readonly title: string;
  /** Lines under the title (setup, units). */
  readonly notes: readonly string[];
  /** Printed after each value: `µs`. */
  readonly unit: string;
  /** Legend entries, one per series. */
  readonly series: readonly string[];
  readonly panels: readonly BarPanel[];
}

const PALETTE = ['#3b6ea8', '#d08a2f', '#5a9e5a', '#a44a6b'];
const WIDTH = 1000;
const VALUE_WIDTH = 90;
// 12 px sans-serif: about 7 px per character, wide letters included.
const CHAR_WIDTH = 7;
const BAR_HEIGHT = 16;
const BAR_GAP = 5;

function escape(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

function formatValue(value: number): string {
  return value >= 100 ? value.toFixed(0) : value >= 10 ? value.toFixed(1) : value.toFixed(2);
}

/** The chart as SVG text. */
export function barChartSvg(chart: BarChart): string {
  const out: string[] = [];
  let y = 28;
  out.push(`<text x="16" y="${y}" font-size="18" font-weight="bold">${escape(chart.title)}</text>`);
  for (const note of chart.notes) {
    y += 18;
    out.push(`<text x="16" y="${y}" font-size="12" fill="#444">${escape(note)}</text>`);
  }
  y += 22;
  let x = 16;
  chart.series.forEach((name, i) => {
    out.push(`<rect x="${x}" y="${y - 11}" width="12" height="12" fill="${PALETTE[i % PALETTE.length]}"/>`);
    out.push(`<text x="${x + 18}" y="${y}" font-size="12">${escape(name)}</text>`);
    x += 30 + name.length * 7;
  });
  const labelWidth =
    24 + CHAR_WIDTH * Math.max(10, ...chart.panels.flatMap((panel) => panel.bars.map((bar) => bar.label.length)));
  const barArea = Math.max(200, WIDTH - labelWidth - VALUE_WIDTH - 16);
  for (const panel of chart.panels) {
    y += 30;
    out.push(`<text x="16" y="${y}" font-size="14" font-weight="bold">${escape(panel.title)}</text>`);
    y += 8;
    const max = Math.max(0, ...panel.bars.map((bar) => bar.value ?? 0));
    for (const bar of panel.bars) {
      const top = y + BAR_GAP;
      const middle = top + BAR_HEIGHT / 2 + 4;
      out.push(
        `<text x="${labelWidth - 8}" y="${middle}" font-size="12" text-anchor="end">${escape(bar.label)}</text>`,
      );
      if (bar.value === null || !Number.isFinite(bar.value)) {
        out.push(`<text x="${labelWidth}" y="${middle}" font-size="12" fill="#888">n/a</text>`);
      } else {
        const width = max > 0 ? Math.max(1, (bar.value / max) * barArea) : 1;
        out.push(
          `<rect x="${labelWidth}" y="${top}" width="${width.toFixed(1)}" height="${BAR_HEIGHT}" fill="${PALETTE[bar.series % PALETTE.length]}"/>`,
        );
        out.push(
          `<text x="${(labelWidth + width + 6).toFixed(1)}" y="${middle}" font-size="12">${formatValue(bar.value)} ${escape(chart.unit)}</text>`,
        );
      }
      y = top + BAR_HEIGHT;
    }
  }
  const height = y + 24;
  const width = Math.max(WIDTH, labelWidth + barArea + VALUE_WIDTH + 16);
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif">`,
    `<rect width="${width}" height="${height}" fill="white"/>`,
    ...out,
    '</svg>',
    '',
  ].join('\n');
}
