// The probes JSONL parser: each kind, strictness (unknown keys, mixed kinds, duplicate ids), errors that
// name file:line, and property tests: valid files round-trip, arbitrary input never throws anything but
// a coded probes error.

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { GitTensorError } from '../../../src/errors/index.js';
import { parseProbes, ProbeFileError } from '../../../src/probe/probes.js';

const lines = (...objs: unknown[]) => objs.map((o) => JSON.stringify(o)).join('\n') + '\n';

describe('parseProbes', () => {
  it('reads the four kinds, in file order, with their guard fields', () => {
    const set = parseProbes(lines(
      { id: 'capital', prompt: 'The capital of France is', targets: [' Paris', ' Lyon'] },
      { id: 'solid', prompt: 'A Platonic solid is a [MASK] regular polyhedron.', targets: ['convex'], protect: true, max_drop: 0.5 },
      { id: 'bear', choices: ['Paris is in France.', 'Paris is in Spain.'] },
      { id: 'story', text: 'Once upon a time there was a cat.' },
      { id: 'open', prompt: 'Once upon a time' },
    ), 'probes.jsonl');
    expect(set.probes.map((p) => [p.id, p.kind, p.line])).toEqual([['capital', 'prompt', 1], ['solid', 'prompt', 2], ['bear', 'choices', 3], ['story', 'text', 4], ['open', 'prompt', 5]]);
    expect(set.probes[1]).toMatchObject({ targets: ['convex'], guard: { protect: true, maxDrop: 0.5 } });
    expect(set.probes[4]).toMatchObject({ targets: [] });
    expect(set.hash).toMatch(/^[0-9a-f]{64}$/);
  });

  it('skips blank lines and CRLF endings, keeping line numbers of the file', () => {
    const set = parseProbes('\r\n{"id":"a","text":"x"}\r\n\n{"id":"b","text":"y"}', 'p');
    expect(set.probes.map((p) => p.line)).toEqual([2, 4]);
  });

  const bad: [string, string, RegExp][] = [
    ['not JSON', '{"id": "a", "text": }', /p\.jsonl:1: not JSON/],
    ['an array', '["a"]', /:1: expected a JSON object/],
    ['no id', '{"text":"x"}', /:1: `id` must be/],
    ['duplicate id', '{"id":"a","text":"x"}\n{"id":"a","text":"y"}', /:2: duplicate id "a" \(first on line 1\)/],
    ['unknown key', '{"id":"a","text":"x","target":"y"}', /unknown key "target"/],
    ['two kinds', '{"id":"a","text":"x","prompt":"y"}', /one of prompt, choices, text per probe/],
    ['no kind', '{"id":"a"}', /needs one of `prompt`/],
    ['targets without prompt', '{"id":"a","choices":["x","y"],"targets":["z"]}', /`targets` goes with a `prompt`/],
    ['empty target', '{"id":"a","prompt":"x","targets":[""]}', /`targets` must be a list of non-empty strings/],
    ['repeated target', '{"id":"a","prompt":"x","targets":["y","y"]}', /lists a target twice/],
    ['one choice', '{"id":"a","choices":["x"]}', /at least two/],
    ['bad max_drop', '{"id":"a","text":"x","max_drop":-1}', /`max_drop` must be a number >= 0/],
    ['bad protect', '{"id":"a","text":"x","protect":"yes"}', /`protect` must be true or false/],
    ['empty file', '\n\n', /p\.jsonl: no probes/],
  ];
  for (const [what, text, message] of bad) {
    it(`refuses ${what}, naming the file and line`, () => {
      let err: unknown;
      try {
        parseProbes(text, 'p.jsonl');
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(ProbeFileError);
      expect((err as GitTensorError).code).toBe('E_PROBES');
      expect((err as GitTensorError).exitCode).toBe(3);
      expect((err as Error).message).toMatch(message);
    });
  }

  it('refuses bytes that are not UTF-8', () => {
    expect(() => parseProbes(new Uint8Array([0x7b, 0xff, 0x7d]), 'p')).toThrow(/not UTF-8/);
  });
});

const str = fc.string({ minLength: 1, maxLength: 20, unit: 'binary' });
const probe = fc.oneof(
  fc.record({ prompt: str, targets: fc.uniqueArray(str, { maxLength: 4 }) }),
  fc.record({ choices: fc.uniqueArray(str, { minLength: 2, maxLength: 4 }) }),
  fc.record({ text: str }),
);

describe('parseProbes properties', () => {
  it('a valid file parses back to what was written', () => {
    fc.assert(fc.property(fc.array(probe, { minLength: 1, maxLength: 8 }), fc.boolean(), (items, protect) => {
      const objs = items.map((p, i) => ({ id: `p${i}`, ...p, ...(protect ? { protect: true } : {}) }));
      const set = parseProbes(objs.map((o) => JSON.stringify(o)).join('\n'), 'p');
      expect(set.probes.map((p) => ({ id: p.id, ...(p.kind === 'prompt' ? { prompt: p.prompt, targets: p.targets } : p.kind === 'choices' ? { choices: p.choices } : { text: p.text }), ...(p.guard.protect ? { protect: true } : {}) })))
        .toEqual(objs.map((o) => ('prompt' in o ? { ...o, targets: o.targets } : o)));
    }));
  });

  it('arbitrary input is parsed or refused with E_PROBES, never anything else', () => {
    const anyLine = fc.oneof(fc.string({ unit: 'binary' }), fc.json(), probe.map((p) => JSON.stringify({ id: 'x', ...p })));
    fc.assert(fc.property(fc.array(anyLine, { maxLength: 6 }), (ls) => {
      try {
        parseProbes(ls.join('\n'), 'p');
      } catch (err) {
        expect(err).toBeInstanceOf(ProbeFileError);
      }
    }));
  });

  it('arbitrary bytes are parsed or refused with E_PROBES', () => {
    fc.assert(fc.property(fc.uint8Array({ maxLength: 200 }), (bytes) => {
      try {
        parseProbes(bytes, 'p');
      } catch (err) {
        expect(err).toBeInstanceOf(ProbeFileError);
      }
    }));
  });
});
