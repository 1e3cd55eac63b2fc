/** A scrape parsed into `name{labels}` → value; label order as the server wrote it. */
export type Scrape = ReadonlyMap<string, number>;

export function parsePrometheusText(text: string): Scrape {
  const samples = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const space = line.lastIndexOf(' ');
    const value = line.slice(space + 1);
    samples.set(line.slice(0, space), value === '+Inf' ? Infinity : Number(value));
  }
  return samples;
}

export async function scrape(
  url: string,
): Promise<{ scrape: Scrape; text: string; contentType: string }> {
  const response = await fetch(url, { signal: AbortSignal.timeout(5_000) });
  if (!response.ok) throw new Error(`GET ${url}: ${response.status}`);
  const text = await response.text();
  const contentType = response.headers.get('content-type') ?? '';
  return { scrape: parsePrometheusText(text), text, contentType };
}

/** The value of one sample, 0 when the series was not written yet (a counter never incremented). */
export function sampleOf(scrape: Scrape, series: string): number {
  return scrape.get(series) ?? 0;
}
