/**
 * A gzip member (RFC 1952) built from a prefix compressed once and a short tail
 * compressed per response. The prefix's deflate data ends with a sync flush
 * (byte-aligned, not final); the tail's is a deflate run of its own that ends
 * the stream. Its blocks never refer back into the prefix, so the joined
 * blocks are one valid deflate stream, and the trailer's CRC-32 continues from
 * the prefix's.
 */
import { constants, crc32, deflateRawSync } from 'node:zlib';

export type GzipPrefix = { deflated: Buffer; crc: number; length: number };

// ID1 ID2, CM=deflate, no flags, no mtime, no extra flags, OS unknown.
const HEADER = Buffer.from([0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff]);

export const gzipPrefixOf = (prefix: Buffer): GzipPrefix => ({
  deflated: deflateRawSync(prefix, { finishFlush: constants.Z_SYNC_FLUSH }),
  crc: crc32(prefix),
  length: prefix.length,
});

export function gzipWithTail(prefix: GzipPrefix, tail: Buffer): Buffer {
  const trailer = Buffer.alloc(8);
  trailer.writeUInt32LE(crc32(tail, prefix.crc) >>> 0, 0);
  trailer.writeUInt32LE((prefix.length + tail.length) >>> 0, 4);
  return Buffer.concat([HEADER, prefix.deflated, deflateRawSync(tail), trailer]);
}
