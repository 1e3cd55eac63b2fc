/**
 * A run record carries the tail of its output as a JSON string. Binary output grows in JSON:
 * a byte that is not valid UTF-8 becomes U+FFFD (3 bytes), a control byte "\u00XX" (6 bytes), so a
 * 1 MiB tail could need 6 MiB, far over etcd's default 1.5 MiB request limit: the finish report
 * was refused again and again and the run's lock stayed. The tail is therefore cut, keeping the
 * newest output, until its JSON encoding fits `encodedBytesMax`; a cut tail starts with a marker.
 */
export const TRUNCATED_MARKER = '[etcron: older output dropped to fit the run record]\n';

export function encodedBytes(text: string): number {
  return Buffer.byteLength(JSON.stringify(text));
}

export function fitOutputTail(text: string, encodedBytesMax: number): string {
  if (encodedBytes(text) <= encodedBytesMax) return text;
  const room = encodedBytesMax - encodedBytes(TRUNCATED_MARKER);
  if (room <= 2) return '';
  // The longest suffix that fits: binary search on where it starts (encoding grows with length).
  let low = 0;
  let high = text.length;
  while (low < high) {
    const middle = Math.floor((low + high) / 2);
    if (encodedBytes(text.slice(middle)) <= room) high = middle;
    else low = middle + 1;
  }
  let start = low;
  // Never start on the second half of a surrogate pair.
  const code = text.charCodeAt(start);
  if (code >= 0xdc00 && code <= 0xdfff) start++;
  return TRUNCATED_MARKER + text.slice(start);
}
