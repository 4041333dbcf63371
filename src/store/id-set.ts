// Owns compact sets of object ids, for walks over a whole store (gc, closures). A JS Set of hex strings
// costs about 150 bytes an id once the strings, the set's entries and the garbage collector's headroom
// are counted; at 14 GiB a store holds some 230,000 chunks, and gc kept three such structures at once
// (461 MiB, docs/store.md "The 14 GiB run"). Here an id costs its 32 bytes in one open-addressed table
// kept at most half full, plus one byte of value per slot in IdMap.

const ID_BYTES = 32;
const MIN_SLOTS = 1024;

/** A set of 32-byte object ids (SHA-256), given as raw bytes or as 64 lowercase hex digits. */
export class IdSet {
  protected slots: number;
  protected table: Buffer;
  /** 1 where a slot holds an id (an all-zero id is a valid id, so emptiness cannot be read from the table). */
  protected used: Uint8Array;
  private count = 0;
  /** Where a hex id is decoded, so that lookups by hex allocate nothing. */
  private readonly scratch = Buffer.alloc(ID_BYTES);

  constructor(expected = 0) {
    this.slots = MIN_SLOTS;
    while (this.slots < 2 * expected) this.slots *= 2;
    this.table = Buffer.alloc(this.slots * ID_BYTES);
    this.used = new Uint8Array(this.slots);
  }

  get size(): number {
    return this.count;
  }

  has(id: Buffer | string): boolean {
    const key = this.key(id);
    return this.used[this.slotOf(key)] === 1;
  }

  /** Adds `id`; true when it was not there yet. */
  add(id: Buffer | string): boolean {
    return this.insert(this.key(id)) >= 0;
  }

  /** Every id, as hex, in no particular order. */
  *[Symbol.iterator](): Generator<string> {
    for (let s = 0; s < this.slots; s++) if (this.used[s]) yield this.table.toString('hex', s * ID_BYTES, (s + 1) * ID_BYTES);
  }

  /** The slot of a new id (after growing when needed), or -1 - slot when the id was there already. */
  protected insert(key: Buffer): number {
    if (2 * (this.count + 1) > this.slots) this.grow();
    const slot = this.slotOf(key);
    if (this.used[slot]) return -1 - slot;
    key.copy(this.table, slot * ID_BYTES, 0, ID_BYTES);
    this.used[slot] = 1;
    this.count++;
    return slot;
  }

  /** The slot holding `key`, or the empty slot where it would go (linear probing). */
  protected slotOf(key: Buffer): number {
    const mask = this.slots - 1;
    // Ids are SHA-256 digests: their first bytes are already uniformly spread.
    let slot = key.readUInt32LE(0) & mask;
    while (this.used[slot] && this.table.compare(key, 0, ID_BYTES, slot * ID_BYTES, (slot + 1) * ID_BYTES) !== 0) slot = (slot + 1) & mask;
    return slot;
  }

  protected key(id: Buffer | string): Buffer {
    if (typeof id !== 'string') {
      if (id.length !== ID_BYTES) throw new RangeError(`an object id has ${ID_BYTES} bytes, not ${id.length}`);
      return id;
    }
    if (id.length !== 2 * ID_BYTES || this.scratch.write(id, 'hex') !== ID_BYTES) throw new RangeError(`not an object id: ${JSON.stringify(id.slice(0, 80))}`);
    return this.scratch;
  }

  /** Doubles the table and puts every id back; `moved(from, to)` lets a subclass carry what it keeps per slot. */
  protected grow(moved?: (from: number, to: number) => void): void {
    const { table, used, slots } = this;
    this.slots *= 2;
    this.table = Buffer.alloc(this.slots * ID_BYTES);
    this.used = new Uint8Array(this.slots);
    this.count = 0;
    for (let s = 0; s < slots; s++) {
      if (!used[s]) continue;
      const to = this.insert(table.subarray(s * ID_BYTES, (s + 1) * ID_BYTES));
      moved?.(s, to);
    }
  }
}

/** An IdSet with a small number (0-255) for each id: e.g. an index into a table of a few distinct values. */
export class IdMap extends IdSet {
  private values = new Uint8Array(this.slots);

  /** Sets `id`'s value; a new id is added. */
  set(id: Buffer | string, value: number): void {
    if (!(value >= 0 && value <= 255 && Number.isInteger(value))) throw new RangeError(`IdMap values are bytes, not ${value}`);
    const slot = this.insert(this.key(id));
    this.values[slot >= 0 ? slot : -1 - slot] = value;
  }

  get(id: Buffer | string): number | undefined {
    const slot = this.slotOf(this.key(id));
    return this.used[slot] ? this.values[slot] : undefined;
  }

  protected override grow(): void {
    const values = this.values;
    this.values = new Uint8Array(this.slots * 2);
    super.grow((from, to) => (this.values[to] = values[from]!));
  }
}
