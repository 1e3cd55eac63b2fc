/**
 * A JSON reader whose refusals carry the words of Go's encoding/json, because etcd's gateway
 * answers bad JSON with those words. Numbers keep their source text: jsonpb reports
 * "cannot unmarshal number 1.5 into Go value of type int64" with the number as written.
 */
export type JsonValue =
  | { readonly kind: 'object'; readonly entries: ReadonlyMap<string, JsonValue> }
  | { readonly kind: 'array'; readonly items: readonly JsonValue[] }
  | { readonly kind: 'string'; readonly value: string }
  | { readonly kind: 'number'; readonly text: string }
  | { readonly kind: 'bool'; readonly value: boolean }
  | { readonly kind: 'null' };

/** A refusal with Go's message; `isTruncated` marks input that ended inside a value. */
export class GoJsonError extends Error {
  override readonly name = 'GoJsonError';
  constructor(
    message: string,
    readonly isTruncated = false,
  ) {
    super(message);
  }
}

/**
 * Nesting deeper than this is refused. Go allows 10000 levels; we stop at 1000 so that the
 * recursive reader stays far from Node's stack limit (etcd's messages nest a handful of levels).
 */
const DEPTH_MAX = 1_000;
const TRUNCATED = 'unexpected EOF';

/**
 * Reads one value starting at `from`, as json.Decoder.Decode does (text after it is left alone).
 * Returns null when only white space is left (Go: io.EOF).
 */
export function readJsonValue(
  text: string,
  from: number,
): { value: JsonValue; end: number } | null {
  const reader = new Reader(text, from);
  reader.skipSpace();
  if (reader.at >= text.length) return null;
  const value = reader.value(0, 'looking for beginning of value');
  return { value, end: reader.at };
}

/** Parses the whole text as one value, as json.Unmarshal does (jsonpb's quoted numbers). */
export function parseJsonWhole(text: string): JsonValue {
  const reader = new Reader(text, 0);
  reader.skipSpace();
  if (reader.at >= text.length) throw new GoJsonError('unexpected end of JSON input');
  let value: JsonValue;
  try {
    value = reader.value(0, 'looking for beginning of value');
  } catch (err) {
    if (err instanceof GoJsonError && err.isTruncated)
      throw new GoJsonError('unexpected end of JSON input');
    throw err;
  }
  reader.skipSpace();
  if (reader.at < text.length) {
    throw new GoJsonError(`invalid character ${quoteChar(text, reader.at)} after top-level value`);
  }
  return value;
}

/** Go's `quoteChar`: how a scanner error names the offending character. */
function quoteChar(text: string, at: number): string {
  const code = text.codePointAt(at) ?? 0;
  if (code === 0x27) return `'\\''`;
  if (code === 0x22) return `'"'`;
  if (code < 0x20 || code === 0x7f) return JSON.stringify(String.fromCodePoint(code));
  return `'${String.fromCodePoint(code)}'`;
}

class Reader {
  constructor(
    private readonly text: string,
    public at: number,
  ) {}

  skipSpace(): void {
    while (this.at < this.text.length) {
      const c = this.text.charCodeAt(this.at);
      if (c !== 0x20 && c !== 0x09 && c !== 0x0a && c !== 0x0d) return;
      this.at++;
    }
  }

  private fail(context: string): never {
    if (this.at >= this.text.length) throw new GoJsonError(TRUNCATED, true);
    throw new GoJsonError(`invalid character ${quoteChar(this.text, this.at)} ${context}`);
  }

  value(depth: number, context: string): JsonValue {
    if (depth > DEPTH_MAX) throw new GoJsonError('exceeded max depth');
    this.skipSpace();
    const c = this.text[this.at];
    if (c === '{') return this.object(depth);
    if (c === '[') return this.array(depth);
    if (c === '"') return { kind: 'string', value: this.string() };
    if (c === 't') return this.literal('true', { kind: 'bool', value: true });
    if (c === 'f') return this.literal('false', { kind: 'bool', value: false });
    if (c === 'n') return this.literal('null', { kind: 'null' });
    if (c === '-' || (c !== undefined && c >= '0' && c <= '9'))
      return { kind: 'number', text: this.number() };
    return this.fail(context);
  }

  private object(depth: number): JsonValue {
    this.at++; // {
    const entries = new Map<string, JsonValue>();
    this.skipSpace();
    if (this.text[this.at] === '}') {
      this.at++;
      return { kind: 'object', entries };
    }
    for (;;) {
      this.skipSpace();
      if (this.text[this.at] !== '"') this.fail('looking for beginning of object key string');
      const key = this.string();
      this.skipSpace();
      if (this.text[this.at] !== ':') this.fail('after object key');
      this.at++;
      entries.set(key, this.value(depth + 1, 'looking for beginning of value'));
      this.skipSpace();
      const next = this.text[this.at];
      if (next === ',') {
        this.at++;
        continue;
      }
      if (next === '}') {
        this.at++;
        return { kind: 'object', entries };
      }
      this.fail('after object key:value pair');
    }
  }

  private array(depth: number): JsonValue {
    this.at++; // [
    const items: JsonValue[] = [];
    this.skipSpace();
    if (this.text[this.at] === ']') {
      this.at++;
      return { kind: 'array', items };
    }
    for (;;) {
      items.push(this.value(depth + 1, 'looking for beginning of value'));
      this.skipSpace();
      const next = this.text[this.at];
      if (next === ',') {
        this.at++;
        continue;
      }
      if (next === ']') {
        this.at++;
        return { kind: 'array', items };
      }
      this.fail('after array element');
    }
  }

  private literal(word: string, value: JsonValue): JsonValue {
    for (let i = 1; i < word.length; i++) {
      this.at++;
      if (this.text[this.at] !== word[i])
        this.fail(`in literal ${word} (expecting '${word[i] ?? ''}')`);
    }
    this.at++;
    return value;
  }

  private number(): string {
    const start = this.at;
    const digits = (): void => {
      while (this.at < this.text.length && this.text[this.at]! >= '0' && this.text[this.at]! <= '9')
        this.at++;
    };
    if (this.text[this.at] === '-') {
      this.at++;
      const c = this.text[this.at];
      if (c === undefined || c < '0' || c > '9') this.fail('in numeric literal');
    }
    if (this.text[this.at] === '0') this.at++;
    else digits();
    if (this.text[this.at] === '.') {
      this.at++;
      const c = this.text[this.at];
      if (c === undefined || c < '0' || c > '9')
        this.fail('after decimal point in numeric literal');
      digits();
    }
    if (this.text[this.at] === 'e' || this.text[this.at] === 'E') {
      this.at++;
      if (this.text[this.at] === '+' || this.text[this.at] === '-') this.at++;
      const c = this.text[this.at];
      if (c === undefined || c < '0' || c > '9') this.fail('in exponent of numeric literal');
      digits();
    }
    return this.text.slice(start, this.at);
  }

  private string(): string {
    const start = this.at;
    this.at++; // opening quote
    for (;;) {
      if (this.at >= this.text.length) this.fail('in string literal');
      const c = this.text.charCodeAt(this.at);
      if (c === 0x22) break;
      if (c < 0x20) this.fail('in string literal');
      if (c === 0x5c) {
        this.at++;
        const e = this.text[this.at];
        if (e === 'u') {
          for (let i = 0; i < 4; i++) {
            this.at++;
            if (!/[0-9a-fA-F]/.test(this.text[this.at] ?? ''))
              this.fail('in \\u hexadecimal character escape');
          }
        } else if (e === undefined || !'"\\/bfnrt'.includes(e)) {
          this.fail('in string escape code');
        }
      }
      this.at++;
    }
    this.at++; // closing quote
    return JSON.parse(this.text.slice(start, this.at)) as string;
  }
}
