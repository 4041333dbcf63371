// The structural half of a three-way checkpoint merge (DESIGN.md "Merge semantics"): per tensor name,
// which side is taken, what is dropped, what must be merged element by element, and what conflicts;
// then `__metadata__` key by key.

import { describe, expect, it } from 'vitest';
import type { PointerTensor } from '../../../src/format/pointer.js';
import { planMetadata, planTensors, type TensorPlan } from '../../../src/merge/plan.js';

const id = (c: string) => c.repeat(64).slice(0, 64);
const T = (name: string, content: string, dtype = 'F32', shape = [4, 4]): PointerTensor => ({ name, dtype, shape, id: id(content) });

function planOf(base: PointerTensor[] | null, ours: PointerTensor[], theirs: PointerTensor[]): Map<string, TensorPlan> {
  return new Map(planTensors({ base, ours, theirs }).map((p) => [p.name, p]));
}

function one(base: PointerTensor | undefined, ours: PointerTensor | undefined, theirs: PointerTensor | undefined): TensorPlan {
  const plans = planTensors({ base: base ? [base] : [], ours: ours ? [ours] : [], theirs: theirs ? [theirs] : [] });
  expect(plans).toHaveLength(1);
  return plans[0]!;
}

describe('planTensors: per tensor name', () => {
  it('unchanged on both sides: taken (from ours, which equals all three)', () => {
    const t = T('w', 'a');
    expect(one(t, t, t)).toEqual({ name: 'w', action: 'take', from: 'ours', tensor: t });
  });

  it('changed on one side only: that side is taken whole', () => {
    const o = T('w', 'a'), changed = T('w', 'b');
    expect(one(o, changed, o)).toMatchObject({ action: 'take', from: 'ours', tensor: changed });
    expect(one(o, o, changed)).toMatchObject({ action: 'take', from: 'theirs', tensor: changed });
  });

  it('changed on both sides to the same content: taken once', () => {
    expect(one(T('w', 'a'), T('w', 'b'), T('w', 'b'))).toMatchObject({ action: 'take', tensor: T('w', 'b') });
  });

  it('changed on both sides differently, same dtype and shape: merged element by element', () => {
    const [o, a, b] = [T('w', 'a'), T('w', 'b'), T('w', 'c')];
    expect(one(o, a, b)).toEqual({ name: 'w', action: 'elementwise', base: o, ours: a, theirs: b });
  });

  it('added on one side: kept', () => {
    const added = T('lora', 'a');
    expect(one(undefined, added, undefined)).toMatchObject({ action: 'take', from: 'ours', tensor: added });
    expect(one(undefined, undefined, added)).toMatchObject({ action: 'take', from: 'theirs', tensor: added });
  });

  it('added on both sides with the same content: kept once; with different content: a conflict', () => {
    expect(one(undefined, T('lora', 'a'), T('lora', 'a'))).toMatchObject({ action: 'take', tensor: T('lora', 'a') });
    const p = one(undefined, T('lora', 'a'), T('lora', 'b', 'F32', [8]));
    expect(p.action).toBe('conflict');
    expect(p.action === 'conflict' && p.reason).toMatch(/added by both sides.*ours F32 \[4, 4\].*theirs F32 \[8\]/);
  });

  it('removed on one side and untouched on the other: removed', () => {
    const t = T('old', 'a');
    // `from` names the side that removed it.
    expect(one(t, undefined, t)).toEqual({ name: 'old', action: 'drop', from: 'ours' });
    expect(one(t, t, undefined)).toEqual({ name: 'old', action: 'drop', from: 'theirs' });
    expect(one(t, undefined, undefined)).toMatchObject({ action: 'drop' });
  });

  it('modified on one side, deleted on the other: a conflict that says which side did what', () => {
    const p1 = one(T('w', 'a'), T('w', 'b'), undefined);
    expect(p1).toMatchObject({ action: 'conflict', ours: T('w', 'b'), theirs: undefined });
    expect(p1.action === 'conflict' && p1.reason).toMatch(/modified by ours, deleted by theirs/);
    const p2 = one(T('w', 'a'), undefined, T('w', 'c'));
    expect(p2.action === 'conflict' && p2.reason).toMatch(/deleted by ours, modified by theirs/);
  });

  it('shape or dtype changed on one side while the other changed values: a conflict naming the layouts', () => {
    const o = T('w', 'a');
    const reshaped = T('w', 'b', 'F32', [2, 8]);
    const p = one(o, reshaped, T('w', 'c'));
    expect(p.action).toBe('conflict');
    expect(p.action === 'conflict' && p.reason).toMatch(/dtype or shape changed: base F32 \[4, 4\], ours F32 \[2, 8\], theirs F32 \[4, 4\]/);
    const recast = one(o, T('w', 'b'), T('w', 'c', 'BF16'));
    expect(recast.action === 'conflict' && recast.reason).toMatch(/theirs BF16 \[4, 4\]/);
  });

  it('shape changed on one side only: that side is taken (nothing to merge on the other)', () => {
    const o = T('w', 'a');
    const reshaped = T('w', 'a', 'F32', [16]); // same bytes, new shape
    expect(one(o, o, reshaped)).toMatchObject({ action: 'take', from: 'theirs', tensor: reshaped });
  });

  it('same bytes but a different dtype is a different tensor', () => {
    const o = T('w', 'a', 'F32'), a = T('w', 'a', 'I32'), b = T('w', 'a', 'U32');
    expect(one(o, a, b).action).toBe('conflict');
  });

  it('names come in ours order, then names only theirs has; a base-only name is dropped', () => {
    const base = [T('x', 'a'), T('gone', 'g')];
    const ours = [T('b', 'b'), T('x', 'a'), T('a', 'a')];
    const theirs = [T('x', 'a'), T('z', 'z'), T('y', 'y')];
    const plans = planTensors({ base, ours, theirs });
    expect(plans.map((p) => p.name)).toEqual(['b', 'x', 'a', 'z', 'y', 'gone']);
    expect(planOf(base, ours, theirs).get('gone')).toMatchObject({ action: 'drop' });
  });

  it('without a base (no common ancestor), a tensor both sides have differently conflicts', () => {
    const plans = planOf(null, [T('w', 'a')], [T('w', 'b')]);
    expect(plans.get('w')!.action).toBe('conflict');
  });
});

describe('planMetadata: __metadata__ key by key', () => {
  const M = (o: Record<string, string>): [string, string][] => Object.entries(o);

  it('no side has metadata: none', () => {
    expect(planMetadata(null, null, null)).toEqual({ merged: null, conflicts: [] });
  });

  it('keys changed, added and removed on one side each merge', () => {
    const base = M({ format: 'pt', step: '100', note: 'x' });
    const ours = M({ format: 'pt', step: '200', note: 'x' }); // ours changed step
    const theirs = M({ format: 'pt', step: '100', lr: '1e-4' }); // theirs removed note, added lr
    expect(planMetadata(base, ours, theirs)).toEqual({ merged: M({ format: 'pt', step: '200', lr: '1e-4' }), conflicts: [] });
  });

  it('the same change on both sides is taken', () => {
    expect(planMetadata(M({ v: '1' }), M({ v: '2' }), M({ v: '2' })).merged).toEqual(M({ v: '2' }));
  });

  it('a key changed differently on both sides is a conflict (ours kept in place)', () => {
    const r = planMetadata(M({ format: 'pt', step: '100' }), M({ format: 'pt', step: '200' }), M({ format: 'pt', step: '300' }));
    expect(r.conflicts).toEqual([{ key: 'step', base: '100', ours: '200', theirs: '300' }]);
    expect(r.merged).toEqual(M({ format: 'pt', step: '200' }));
  });

  it('a key added on both sides with different values, or changed vs removed, is a conflict', () => {
    expect(planMetadata(M({}), M({ run: 'a' }), M({ run: 'b' })).conflicts).toEqual([{ key: 'run', base: undefined, ours: 'a', theirs: 'b' }]);
    expect(planMetadata(M({ run: 'x' }), M({ run: 'a' }), M({})).conflicts).toEqual([{ key: 'run', base: 'x', ours: 'a', theirs: undefined }]);
  });

  it('metadata added by one side only is kept; removed by one side only is removed', () => {
    expect(planMetadata(null, null, M({ format: 'pt' })).merged).toEqual(M({ format: 'pt' }));
    expect(planMetadata(M({ format: 'pt' }), M({ format: 'pt' }), null).merged).toBeNull();
  });

  it('an empty __metadata__ on both sides stays (present but empty), distinct from absent', () => {
    expect(planMetadata(M({}), M({}), M({})).merged).toEqual([]);
  });
});
