import { HUFFMAN_CODES, HUFFMAN_LENGTHS, STATIC_TABLE } from './hpack-tables.js';

/**
 * Just enough HPACK (RFC 7541) to read a client's header blocks and write them again: a decoder
 * that keeps the client encoder's dynamic table in step, and an encoder that writes plain literals
 * only (never indexed, never Huffman), so whoever reads them needs no table state of its own.
 * Names and values are byte strings, held as latin1.
 */
export class HpackError extends Error {
  override readonly name = 'HpackError';
}

export type HeaderList = [string, string][];

interface HuffmanNode { symbol: number; zero: HuffmanNode | null; one: HuffmanNode | null }

function buildHuffmanTree(): HuffmanNode {
  const root: HuffmanNode = { symbol: -1, zero: null, one: null };
  for (let symbol = 0; symbol < 256; symbol++) {
    const code = HUFFMAN_CODES[symbol] as number;
    const length = HUFFMAN_LENGTHS[symbol] as number;
    let node = root;
    for (let bit = length - 1; bit >= 0; bit--) {
      const isOne = ((code >>> bit) & 1) === 1;
      const next = isOne ? node.one : node.zero;
      if (next !== null) {
        node = next;
        continue;
      }
      const created: HuffmanNode = { symbol: bit === 0 ? symbol : -1, zero: null, one: null };
      if (isOne) node.one = created;
      else node.zero = created;
      node = created;
    }
  }
  return root;
}

const HUFFMAN_ROOT = buildHuffmanTree();

function huffmanDecode(bytes: Buffer): string {
  const out: number[] = [];
  let node = HUFFMAN_ROOT;
  let depth = 0;
  let allOnes = true;
  for (const byte of bytes) {
    for (let bit = 7; bit >= 0; bit--) {
      const isOne = ((byte >> bit) & 1) === 1;
      const next = isOne ? node.one : node.zero;
      if (next === null) throw new HpackError('invalid Huffman code');
      depth++;
      allOnes &&= isOne;
      if (next.symbol >= 0) {
        out.push(next.symbol);
        node = HUFFMAN_ROOT;
        depth = 0;
        allOnes = true;
      } else {
        node = next;
      }
    }
  }
  // Padding: fewer than 8 bits, all ones (a prefix of the end-of-string code).
  if (depth > 7 || !allOnes) throw new HpackError('invalid Huffman padding');
  return Buffer.from(out).toString('latin1');
}

/** Bounds on what one block may hold: a client cannot make us allocate without end. */
const HEADER_STRING_BYTES_MAX = 1 << 20;

export class HpackDecoder {
  /** Newest first. */
  private dynamic: [string, string][] = [];
  private size = 0;

  constructor(private maxSize = 4096, private readonly maxSizeLimit = 65_536) {}

  decode(block: Buffer): HeaderList {
    const headers: HeaderList = [];
    let at = 0;
    const integer = (prefixBits: number): number => {
      const mask = (1 << prefixBits) - 1;
      let value = (block[at] as number) & mask;
      at++;
      if (value < mask) return value;
      let shift = 0;
      for (;;) {
        if (at >= block.length) throw new HpackError('truncated integer');
        const byte = block[at++] as number;
        value += (byte & 0x7f) * 2 ** shift;
        shift += 7;
        if ((byte & 0x80) === 0) break;
        if (shift > 28) throw new HpackError('integer too large');
      }
      return value;
    };
    const string = (): string => {
      if (at >= block.length) throw new HpackError('truncated string');
      const isHuffman = ((block[at] as number) & 0x80) !== 0;
      const length = integer(7);
      if (length > HEADER_STRING_BYTES_MAX || at + length > block.length) throw new HpackError('string past the block');
      const bytes = block.subarray(at, at + length);
      at += length;
      return isHuffman ? huffmanDecode(bytes) : bytes.toString('latin1');
    };
    while (at < block.length) {
      const first = block[at] as number;
      if ((first & 0x80) !== 0) {
        headers.push(this.entry(integer(7)));
      } else if ((first & 0xc0) === 0x40) {
        const index = integer(6);
        const name = index === 0 ? string() : (this.entry(index)[0]);
        const value = string();
        headers.push([name, value]);
        this.add(name, value);
      } else if ((first & 0xe0) === 0x20) {
        const size = integer(5);
        if (size > this.maxSizeLimit) throw new HpackError('dynamic table size above the limit');
        this.maxSize = size;
        this.evict();
      } else {
        // Literal without indexing (0000) or never indexed (0001): 4-bit index prefix.
        const index = integer(4);
        const name = index === 0 ? string() : (this.entry(index)[0]);
        headers.push([name, string()]);
      }
    }
    return headers;
  }

  private entry(index: number): [string, string] {
    if (index === 0) throw new HpackError('index 0');
    if (index <= STATIC_TABLE.length) return [...(STATIC_TABLE[index - 1] as readonly [string, string])];
    const found = this.dynamic[index - STATIC_TABLE.length - 1];
    if (found === undefined) throw new HpackError(`index ${index} beyond the table`);
    return [...found];
  }

  private add(name: string, value: string): void {
    this.dynamic.unshift([name, value]);
    this.size += name.length + value.length + 32;
    this.evict();
  }

  private evict(): void {
    while (this.size > this.maxSize && this.dynamic.length > 0) {
      const [name, value] = this.dynamic.pop() as [string, string];
      this.size -= name.length + value.length + 32;
    }
  }
}

function writeInteger(out: number[], value: number, prefixBits: number, firstByte: number): void {
  const mask = (1 << prefixBits) - 1;
  if (value < mask) {
    out.push(firstByte | value);
    return;
  }
  out.push(firstByte | mask);
  let rest = value - mask;
  while (rest >= 0x80) {
    out.push((rest % 0x80) | 0x80);
    rest = Math.floor(rest / 0x80);
  }
  out.push(rest);
}

/** Every header as a literal without indexing, with a literal name: no table on either side. */
export function encodeLiterals(headers: HeaderList): Buffer {
  const parts: Buffer[] = [];
  for (const [name, value] of headers) {
    const prefix: number[] = [];
    prefix.push(0x00);
    writeInteger(prefix, name.length, 7, 0x00);
    parts.push(Buffer.from(prefix), Buffer.from(name, 'latin1'));
    const valuePrefix: number[] = [];
    writeInteger(valuePrefix, value.length, 7, 0x00);
    parts.push(Buffer.from(valuePrefix), Buffer.from(value, 'latin1'));
  }
  return Buffer.concat(parts);
}
