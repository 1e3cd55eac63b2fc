import protobuf from 'protobufjs';
import { decodeGoBase64 } from './go-base64.js';
import { GoJsonError, parseJsonWhole, type JsonValue } from './go-json.js';

/**
 * JSON ⇄ protobuf as etcd 3.4's gateway does it: golang/protobuf jsonpb with OrigName, so
 * snake_case names as declared, 64-bit integers as strings, bytes as padded base64, enums by
 * name, and fields at their default value left out. Requests accept what jsonpb accepts: declared
 * or lowerCamel names, integers as numbers or quoted, enums by name or number, null as absent;
 * unknown fields are ignored.
 */
export type ProtoObject = Record<string, unknown>;

const INT_RANGES: Readonly<Record<string, readonly [bigint, bigint]>> = {
  int64: [-(2n ** 63n), 2n ** 63n - 1n],
  sint64: [-(2n ** 63n), 2n ** 63n - 1n],
  sfixed64: [-(2n ** 63n), 2n ** 63n - 1n],
  uint64: [0n, 2n ** 64n - 1n],
  fixed64: [0n, 2n ** 64n - 1n],
  int32: [-(2n ** 31n), 2n ** 31n - 1n],
  sint32: [-(2n ** 31n), 2n ** 31n - 1n],
  sfixed32: [-(2n ** 31n), 2n ** 31n - 1n],
  uint32: [0n, 2n ** 32n - 1n],
  fixed32: [0n, 2n ** 32n - 1n],
};
/** Go's names for the types a protobuf integer becomes. */
const GO_INT_NAMES: Readonly<Record<string, string>> = {
  int64: 'int64',
  sint64: 'int64',
  sfixed64: 'int64',
  uint64: 'uint64',
  fixed64: 'uint64',
  int32: 'int32',
  sint32: 'int32',
  sfixed32: 'int32',
  uint32: 'uint32',
  fixed32: 'uint32',
};
const IS_64_BIT = new Set(['int64', 'sint64', 'sfixed64', 'uint64', 'fixed64']);

function cannotUnmarshal(what: string, goType: string): GoJsonError {
  return new GoJsonError(`json: cannot unmarshal ${what} into Go value of type ${goType}`);
}

/** Go's generated name of an enum: package, then nested names joined by '_'. */
function goEnumName(type: protobuf.Enum): string {
  const [pkg = '', ...rest] = type.fullName.replace(/^\./, '').split('.');
  return `${pkg}.${rest.join('_')}`;
}

export function jsonToMessage(type: protobuf.Type, json: JsonValue): ProtoObject {
  if (json.kind === 'null') return {}; // Go decodes null into an empty message
  if (json.kind !== 'object') throw cannotUnmarshal(json.kind, 'map[string]json.RawMessage');
  const out: ProtoObject = {};
  for (const field of type.fieldsArray) {
    // jsonpb accepts the declared name and protoc's lowerCamel JSON name, preferring the latter.
    const value = json.entries.get(jsonNameOf(field.name)) ?? json.entries.get(field.name);
    if (value === undefined || value.kind === 'null') continue;
    if (field.repeated) {
      if (value.kind !== 'array') throw cannotUnmarshal(value.kind, '[]json.RawMessage');
      out[field.name] = value.items.map((item) => jsonToField(field, item));
      continue;
    }
    const converted = jsonToField(field, value);
    // etcd's gateway re-encodes the request for gRPC, where proto3 drops a scalar at its default
    // (oneof members excepted): an empty range_end then arrives absent, not present-but-empty.
    if (field.partOf === null && isDefaultScalar(converted)) continue;
    out[field.name] = converted;
  }
  return out;
}

/** protoc's JSON name: underscores dropped, each following letter upper-cased. */
/** One entry per field name of our protos, so it stays small. */
const jsonNames = new Map<string, string>();

function jsonNameOf(name: string): string {
  let jsonName = jsonNames.get(name);
  if (jsonName === undefined) {
    jsonName = name.replace(/_(.?)/g, (_, next: string) => next.toUpperCase());
    jsonNames.set(name, jsonName);
  }
  return jsonName;
}

function isDefaultScalar(value: unknown): boolean {
  if (Buffer.isBuffer(value)) return value.length === 0;
  return value === 0 || value === '0' || value === '' || value === false;
}

function jsonToField(field: protobuf.Field, value: JsonValue): unknown {
  const resolved = field.resolvedType;
  if (resolved instanceof protobuf.Type) {
    if (value.kind === 'null') return {};
    return jsonToMessage(resolved, value);
  }
  if (resolved instanceof protobuf.Enum) return jsonToEnum(resolved, value);
  switch (field.type) {
    case 'bool':
      if (value.kind !== 'bool') throw cannotUnmarshal(value.kind, 'bool');
      return value.value;
    case 'string':
      if (value.kind !== 'string') throw cannotUnmarshal(value.kind, 'string');
      return value.value;
    case 'bytes':
      if (value.kind !== 'string') throw cannotUnmarshal(value.kind, '[]uint8');
      return decodeGoBase64(value.value);
    default:
      return jsonToInteger(field.type, value);
  }
}

function jsonToEnum(type: protobuf.Enum, value: JsonValue): number {
  if (value.kind === 'string') {
    const number = type.values[value.value];
    if (number === undefined)
      throw new GoJsonError(
        `unknown value ${JSON.stringify(value.value)} for enum ${goEnumName(type)}`,
      );
    return number;
  }
  return Number(integerOf(value, 'int32', goEnumName(type)));
}

function jsonToInteger(protoType: string, value: JsonValue): string | number {
  const goType = GO_INT_NAMES[protoType];
  if (goType === undefined) throw new Error(`no JSON form for proto type ${protoType}`);
  // jsonpb drops the quotes of a quoted number and reads what is inside as JSON.
  const inner = value.kind === 'string' ? parseJsonWhole(value.value) : value;
  if (inner.kind === 'null') return IS_64_BIT.has(protoType) ? '0' : 0;
  const integer = integerOf(inner, protoType, goType);
  return IS_64_BIT.has(protoType) ? integer.toString() : Number(integer);
}

function integerOf(value: JsonValue, protoType: string, goType: string): bigint {
  if (value.kind !== 'number') throw cannotUnmarshal(value.kind, goType);
  const range = INT_RANGES[protoType] ?? INT_RANGES['int32'];
  if (!/^-?\d+$/.test(value.text) || range === undefined)
    throw cannotUnmarshal(`number ${value.text}`, goType);
  const integer = BigInt(value.text);
  if (integer < range[0] || integer > range[1])
    throw cannotUnmarshal(`number ${value.text}`, goType);
  return integer;
}

/** Go's json.Marshal of a string: it escapes <, >, & and the JS line separators as well. */
export function goJsonString(text: string): string {
  return JSON.stringify(text).replace(
    /[<>&\u2028\u2029]/g,
    (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`,
  );
}

function isLong(value: unknown): value is protobuf.Long {
  return typeof value === 'object' && value !== null && 'low' in value && 'high' in value;
}

/**
 * One scalar as jsonpb writes it, or null for a default value left out. `keepDefault` is set for
 * repeated elements and oneof members, which Go writes whatever they hold.
 */
function scalarJson(field: protobuf.Field, value: unknown, keepDefault: boolean): string | null {
  const resolved = field.resolvedType;
  if (resolved instanceof protobuf.Enum) {
    const number = Number(value);
    if (number === 0 && !keepDefault) return null;
    const name = resolved.valuesById[number];
    return name === undefined ? String(number) : goJsonString(name);
  }
  if (isLong(value)) {
    if (value.low === 0 && value.high === 0 && !keepDefault) return null;
    const bits = (BigInt(value.high >>> 0) << 32n) | BigInt(value.low >>> 0);
    return `"${(value.unsigned ? bits : BigInt.asIntN(64, bits)).toString()}"`;
  }
  switch (typeof value) {
    case 'number':
      if (value === 0 && !keepDefault) return null;
      return IS_64_BIT.has(field.type) ? `"${value}"` : String(value);
    case 'boolean':
      return value || keepDefault ? String(value) : null;
    case 'string':
      return value === '' && !keepDefault ? null : goJsonString(value);
    default:
      if (value instanceof Uint8Array) {
        return value.length === 0 && !keepDefault
          ? null
          : `"${Buffer.from(value).toString('base64')}"`;
      }
      return null;
  }
}

function fieldJson(field: protobuf.Field, value: unknown, keepDefault: boolean): string | null {
  const resolved = field.resolvedType;
  if (resolved instanceof protobuf.Type) {
    if (value === null || value === undefined) return keepDefault ? '{}' : null;
    return messageToJson(resolved, value as ProtoObject);
  }
  return scalarJson(field, value, keepDefault);
}

/** A decoded protobufjs message as the JSON text jsonpb (OrigName, no defaults) writes. */
export function messageToJson(type: protobuf.Type, message: ProtoObject): string {
  const parts: string[] = [];
  for (const field of type.fieldsArray) {
    const value = message[field.name];
    if (value === undefined || value === null) continue;
    const oneof = field.partOf;
    const isOneofMember = oneof !== null;
    // A oneof member counts only when the oneof names it; otherwise it is a prototype default.
    if (oneof !== null && message[oneof.name] !== field.name) continue;
    let text: string | null;
    if (field.repeated) {
      const items = value as unknown[];
      if (items.length === 0) continue;
      text = `[${items.map((item) => fieldJson(field, item, true) ?? 'null').join(',')}]`;
    } else {
      text = fieldJson(field, value, isOneofMember);
    }
    if (text !== null) parts.push(`${goJsonString(field.name)}:${text}`);
  }
  return `{${parts.join(',')}}`;
}
