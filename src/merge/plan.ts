// Owns the structural part of a three-way checkpoint merge: from the base, ours and theirs pointers,
// decide per tensor name whether a side is taken whole, the tensor is dropped, it must be merged
// element by element, or the sides disagree about its existence, dtype or shape. Also merges
// `__metadata__` key by key. Pure: no store access, no values. Semantics: DESIGN.md "Merge semantics".

import type { PointerTensor } from '../format/pointer.js';

export type Side = 'base' | 'ours' | 'theirs';

export type TensorPlan =
  | { name: string; action: 'take'; from: Side; tensor: PointerTensor }
  | { name: string; action: 'drop'; from: Side }
  | { name: string; action: 'elementwise'; base: PointerTensor; ours: PointerTensor; theirs: PointerTensor }
  | { name: string; action: 'conflict'; reason: string; base?: PointerTensor; ours?: PointerTensor; theirs?: PointerTensor };

export interface MetadataPlan {
  /** null when no side has `__metadata__`. */
  merged: [string, string][] | null;
  conflicts: { key: string; base?: string; ours?: string; theirs?: string }[];
}

export interface CheckpointSides {
  base: PointerTensor[] | null;
  ours: PointerTensor[];
  theirs: PointerTensor[];
}

const sameLayout = (x: PointerTensor, y: PointerTensor) => x.dtype === y.dtype && x.shape.join() === y.shape.join();
const sameTensor = (x?: PointerTensor, y?: PointerTensor) => (x === undefined ? y === undefined : y !== undefined && x.id === y.id && sameLayout(x, y));
const describe = (t: PointerTensor) => `${t.dtype} [${t.shape.join(', ')}]`;

/** Tensor names in a stable order: ours' order, then names only theirs has, in theirs' order. */
export function planTensors(sides: CheckpointSides): TensorPlan[] {
  const index = (ts: PointerTensor[] | null) => new Map((ts ?? []).map((t) => [t.name, t]));
  const O = index(sides.base);
  const A = index(sides.ours);
  const B = index(sides.theirs);
  const names = [...new Set([...A.keys(), ...B.keys(), ...O.keys()])];
  return names.map((name) => planOne(name, O.get(name), A.get(name), B.get(name)));
}

function planOne(name: string, o?: PointerTensor, a?: PointerTensor, b?: PointerTensor): TensorPlan {
  if (sameTensor(a, b)) return a ? { name, action: 'take', from: 'ours', tensor: a } : { name, action: 'drop', from: 'ours' };
  if (sameTensor(o, a)) return b ? { name, action: 'take', from: 'theirs', tensor: b } : { name, action: 'drop', from: 'theirs' };
  if (sameTensor(o, b)) return a ? { name, action: 'take', from: 'ours', tensor: a } : { name, action: 'drop', from: 'ours' };
  // Both sides changed it, differently.
  if (!a || !b) {
    const kept = (a ?? b)!;
    return { name, action: 'conflict', reason: `${a ? 'modified by ours, deleted by theirs' : 'deleted by ours, modified by theirs'} (${describe(kept)})`, base: o, ours: a, theirs: b };
  }
  if (!o) return { name, action: 'conflict', reason: `added by both sides with different content (ours ${describe(a)}, theirs ${describe(b)})`, ours: a, theirs: b };
  if (!sameLayout(a, b) || !sameLayout(o, a)) {
    return { name, action: 'conflict', reason: `dtype or shape changed: base ${describe(o)}, ours ${describe(a)}, theirs ${describe(b)}`, base: o, ours: a, theirs: b };
  }
  return { name, action: 'elementwise', base: o, ours: a, theirs: b };
}

/** `settle`, when given, decides keys changed differently on both sides instead of reporting them. */
export function planMetadata(base: [string, string][] | null, ours: [string, string][] | null, theirs: [string, string][] | null, settle?: Side): MetadataPlan {
  if (!base && !ours && !theirs) return { merged: null, conflicts: [] };
  const O = new Map(base ?? []);
  const A = new Map(ours ?? []);
  const B = new Map(theirs ?? []);
  const keys = [...new Set([...A.keys(), ...B.keys(), ...O.keys()])];
  const merged: [string, string][] = [];
  const conflicts: MetadataPlan['conflicts'] = [];
  for (const key of keys) {
    const o = O.get(key);
    const a = A.get(key);
    const b = B.get(key);
    let value: string | undefined;
    if (a === b) value = a;
    else if (o === a) value = b;
    else if (o === b) value = a;
    else if (settle) value = { base: o, ours: a, theirs: b }[settle];
    else {
      conflicts.push({ key, base: o, ours: a, theirs: b });
      value = a; // ours stays in place until the conflict is resolved
    }
    if (value !== undefined) merged.push([key, value]);
  }
  // Whether `__metadata__` exists at all merges three-way too; keys that survive keep it in any case.
  const [o, a, b] = [base !== null, ours !== null, theirs !== null];
  const present = a === b ? a : o === a ? b : a;
  return { merged: present || merged.length ? merged : null, conflicts };
}
