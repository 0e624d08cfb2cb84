// Where a tar stream's archive ends, found by walking its blocks as node-tar's Parser does, so
// the unpacker (archive.ts) can tell the zero padding writers add after the end marker from
// data smuggled past it that no tar reader would look at.
import { Header, type HeaderData, Pax } from 'tar';

// Pax and GNU long-name headers are the only meta entries; real paths fit in far less.
export const MAX_META_ENTRY_SIZE = 64 * 1024;

const META_TYPES = new Set([
  'ExtendedHeader',
  'OldExtendedHeader',
  'GlobalExtendedHeader',
  'NextFileHasLongPath',
  'OldGnuLongPath',
  'NextFileHasLongLinkpath',
]);

/**
 * Finds where a tar stream's end-of-archive marker (two zero header blocks) ends, by
 * walking its blocks exactly as node-tar's Parser does: headers decoded by its Header
 * class with the pending pax and GNU long-name fields (a pax `size` moves the next header),
 * bodies skipped block-rounded. A header the parser would reject does not matter here: the
 * parser's error refuses the upload anyway.
 */
export class TarEnd {
  found = false;
  private carry: Buffer | undefined;
  /** Body bytes (block-rounded) still to pass before the next header. */
  private skip = 0;
  /** A meta entry's body being collected (pax records, a long name). */
  private meta: { type: string; size: number; parts: Buffer[]; have: number } | undefined;
  private ex: HeaderData | undefined;
  private gex: HeaderData | undefined;
  private sawNullBlock = false;

  /** Splits a chunk into the part inside the archive and the part after its end marker. */
  split(chunk: Buffer): [Buffer, Buffer] {
    if (this.found) return [EMPTY, chunk];
    let at = 0;
    while (at < chunk.length) {
      if (this.skip > 0) {
        const n = Math.min(this.skip, chunk.length - at);
        this.collect(chunk.subarray(at, at + n));
        this.skip -= n;
        at += n;
        if (this.skip === 0) this.finishMeta();
        continue;
      }
      const need = 512 - (this.carry?.length ?? 0);
      if (chunk.length - at < need) {
        this.carry = Buffer.concat([this.carry ?? EMPTY, chunk.subarray(at)]);
        break;
      }
      const block = this.carry
        ? Buffer.concat([this.carry, chunk.subarray(at, at + need)])
        : chunk.subarray(at, at + 512);
      this.carry = undefined;
      at += need;
      this.header(block);
      if (this.found) return [chunk.subarray(0, at), chunk.subarray(at)];
    }
    return [chunk, EMPTY];
  }

  private header(block: Buffer): void {
    let header: Header;
    try {
      header = new Header(block, 0, this.ex, this.gex);
    } catch {
      return; // the parser refuses it
    }
    if (header.nullBlock) {
      if (this.sawNullBlock) this.found = true;
      this.sawNullBlock = true;
      return;
    }
    this.sawNullBlock = false;
    if (!header.cksumValid || !header.path) return; // the parser refuses it
    const size = header.size ?? 0;
    this.skip = 512 * Math.ceil(size / 512);
    const type = header.type;
    if (META_TYPES.has(type)) {
      // Larger meta entries are skipped by the parser (and refused by us as ignored).
      if (size > 0 && size <= MAX_META_ENTRY_SIZE) this.meta = { type, size, parts: [], have: 0 };
      return;
    }
    this.ex = undefined;
  }

  private collect(body: Buffer): void {
    const meta = this.meta;
    if (!meta || meta.have >= meta.size) return;
    const part = body.subarray(0, meta.size - meta.have);
    meta.parts.push(part);
    meta.have += part.length;
  }

  private finishMeta(): void {
    const meta = this.meta;
    this.meta = undefined;
    if (!meta) return;
    const text = Buffer.concat(meta.parts).toString();
    if (meta.type === 'GlobalExtendedHeader') this.gex = Pax.parse(text, this.gex, true);
    else if (meta.type === 'ExtendedHeader' || meta.type === 'OldExtendedHeader') {
      this.ex = Pax.parse(text, this.ex, false);
    } else {
      const key = meta.type === 'NextFileHasLongLinkpath' ? 'linkpath' : 'path';
      this.ex = { ...this.ex, [key]: text.replace(/\0.*/, '') };
    }
  }
}

const EMPTY = Buffer.alloc(0);
