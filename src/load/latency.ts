// Latency histograms: every load run, benchmark and traffic check records its latencies in µs into an HDR
// histogram (hdr-histogram-js) and reads percentiles back from it, so a p99 means the same everywhere.
import * as hdr from 'hdr-histogram-js';

export type { Histogram } from 'hdr-histogram-js';

/** createLatencyHistogram returns an empty histogram for µs values from 1 µs to an hour, 3 significant digits. */
export function createLatencyHistogram(): hdr.Histogram {
  return hdr.build({
    lowestDiscernibleValue: 1,
    highestTrackableValue: 3_600_000_000,
    numberOfSignificantValueDigits: 3,
  });
}

/** recordLatency records one latency in µs (rounded, at least 1: a value of 0 would read as nothing). */
export function recordLatency(histogram: hdr.Histogram, us: number): void {
  histogram.recordValue(Math.max(1, Math.round(us)));
}

/** mergeLatencies returns one histogram holding the values of all of them (several runs pooled). */
export function mergeLatencies(histograms: Iterable<hdr.Histogram>): hdr.Histogram {
  const merged = createLatencyHistogram();
  for (const histogram of histograms) merged.add(histogram);
  return merged;
}

/** encodeLatencies packs a histogram for another thread (hdr's compressed base64); decodeLatencies unpacks it. */
export function encodeLatencies(histogram: hdr.Histogram): string {
  return hdr.encodeIntoCompressedBase64(histogram);
}

export function decodeLatencies(encoded: string): hdr.Histogram {
  return hdr.decodeFromCompressedBase64(encoded);
}

/** ms converts µs to ms, rounded to the µs. */
export function ms(us: number): number {
  return Math.round(us) / 1000;
}

/** percentileMs returns the value at percentile p (0-100) in ms. */
export function percentileMs(histogram: hdr.Histogram, p: number): number {
  return ms(histogram.getValueAtPercentile(p));
}
