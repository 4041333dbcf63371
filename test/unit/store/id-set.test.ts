import { createHash, randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { IdMap, IdSet } from '../../../src/store/id-set.js';

const id = (k: number) => createHash('sha256').update(`object ${k}`).digest();

describe('IdSet', () => {
  it('agrees with a Set of hex strings over random adds and lookups, by bytes and by hex, through growth', () => {
    const set = new IdSet();
    const oracle = new Set<string>();
    const disagreements: string[] = [];
    // Ids drawn from a small pool so that repeats are common; lookups also ask for ids never added.
    for (let step = 0; step < 20000; step++) {
      const key = id(Math.floor(Math.random() * 6000));
      const added = set.add(Math.random() < 0.5 ? key.toString('hex') : key);
      if (added !== !oracle.has(key.toString('hex'))) disagreements.push(`add ${key.toString('hex')} at step ${step}`);
      oracle.add(key.toString('hex'));
      const probe = id(Math.floor(Math.random() * 12000));
      if (set.has(Math.random() < 0.5 ? probe : probe.toString('hex')) !== oracle.has(probe.toString('hex'))) disagreements.push(`has ${probe.toString('hex')} at step ${step}`);
    }
    expect(disagreements).toEqual([]);
    expect(set.size).toBe(oracle.size);
    expect([...set].sort()).toEqual([...oracle].sort());
  });

  it('tells apart ids that share their first bytes (the bytes it places them by)', () => {
    const set = new IdSet();
    const a = Buffer.alloc(32);
    const b = Buffer.alloc(32);
    b[31] = 1;
    expect(set.has(a)).toBe(false); // the all-zero id is an id like any other
    expect(set.add(a)).toBe(true);
    expect(set.has(b)).toBe(false);
    expect(set.add(b)).toBe(true);
    expect(set.add(a)).toBe(false);
    expect(set.size).toBe(2);
  });

  it('refuses what is not an object id', () => {
    const set = new IdSet();
    expect(() => set.add(randomBytes(31))).toThrow(RangeError);
    expect(() => set.add('ab')).toThrow(RangeError);
    expect(() => set.has('zz'.repeat(32))).toThrow(RangeError);
  });
});

describe('IdMap', () => {
  it('keeps a byte per id through growth, and the last value set wins', () => {
    const map = new IdMap();
    const oracle = new Map<string, number>();
    for (let step = 0; step < 10000; step++) {
      const key = id(Math.floor(Math.random() * 4000));
      const value = Math.floor(Math.random() * 256);
      map.set(key, value);
      oracle.set(key.toString('hex'), value);
    }
    expect(map.size).toBe(oracle.size);
    for (const [hex, value] of oracle) expect(map.get(hex)).toBe(value);
    expect(map.get(id(999999))).toBeUndefined();
    expect(() => map.set(id(1), 256)).toThrow(RangeError);
  });
});
