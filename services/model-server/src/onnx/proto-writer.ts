/**
 * A minimal protocol-buffers encoder: exactly the wire types ONNX's ModelProto needs
 * (varint, length-delimited, packed varints). Hand-written rather than generated because the
 * model builder writes a handful of messages with fixed field numbers; a 100-line encoder is
 * easier to audit than a protobufjs schema plus a vendored onnx.proto.
 */

const WIRE_VARINT = 0;
const WIRE_LENGTH_DELIMITED = 2;

const textEncoder = new TextEncoder();

/** Appends protobuf fields to a growing buffer; `finish()` returns the encoded message. */
export class ProtoWriter {
  private readonly chunks: Uint8Array[] = [];
  private length = 0;

  /** Writes a varint field (int32/int64/enum/bool). Only non-negative safe integers are needed. */
  varint(field: number, value: number): this {
    this.tag(field, WIRE_VARINT);
    this.rawVarint(value);
    return this;
  }

  /** Writes a string field as UTF-8. */
  string(field: number, value: string): this {
    return this.bytes(field, textEncoder.encode(value));
  }

  /** Writes a bytes field. */
  bytes(field: number, value: Uint8Array): this {
    this.tag(field, WIRE_LENGTH_DELIMITED);
    this.rawVarint(value.length);
    this.push(value);
    return this;
  }

  /** Writes an embedded message produced by another writer. */
  message(field: number, value: ProtoWriter): this {
    return this.bytes(field, value.finish());
  }

  /** Writes a repeated varint field in packed form (proto2 `[packed = true]` and proto3 default). */
  packedVarints(field: number, values: readonly number[]): this {
    const inner = new ProtoWriter();
    for (const v of values) inner.rawVarint(v);
    return this.bytes(field, inner.finish());
  }

  /** The encoded bytes written so far. */
  finish(): Uint8Array {
    const out = new Uint8Array(this.length);
    let offset = 0;
    for (const chunk of this.chunks) {
      out.set(chunk, offset);
      offset += chunk.length;
    }
    return out;
  }

  private tag(field: number, wireType: number): void {
    if (!Number.isInteger(field) || field < 1 || field > 536_870_911) {
      throw new RangeError(`protobuf field number must be an integer in 1..2^29-1, got ${field}`);
    }
    this.rawVarint(field * 8 + wireType);
  }

  private rawVarint(value: number): void {
    // Negative int64 values would need a 10-byte two's-complement encoding; ONNX dims and
    // versions written here are never negative, so refusing them keeps the encoder honest.
    if (!Number.isSafeInteger(value) || value < 0) {
      throw new RangeError(`varint must be a non-negative safe integer, got ${value}`);
    }
    const bytes: number[] = [];
    let v = value;
    // Arithmetic instead of bit operators: JS bitwise ops truncate to 32 bits.
    while (v >= 0x80) {
      bytes.push((v % 0x80) + 0x80);
      v = Math.floor(v / 0x80);
    }
    bytes.push(v);
    this.push(Uint8Array.from(bytes));
  }

  private push(chunk: Uint8Array): void {
    this.chunks.push(chunk);
    this.length += chunk.length;
  }
}
