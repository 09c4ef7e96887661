import { createHash } from 'crypto';
import { canonicalJson, sha256Hex } from '../pipelines/hash';

describe('pure SHA-256 (used by the planner inside the Temporal sandbox)', () => {
  test('equals node:crypto on edge lengths, non-ASCII text and random strings', () => {
    const cases = ['', 'abc', 'a'.repeat(55), 'a'.repeat(56), 'a'.repeat(63), 'a'.repeat(64), 'é😀'.repeat(300), 'x'.repeat(5000), 'ascii then é'];
    let seed = 7;
    for (let i = 0; i < 300; i++) {
      seed = (seed * 48271) % 2147483647;
      cases.push(seed.toString(36).repeat(i % 40));
    }
    for (const s of cases) expect(sha256Hex(s)).toBe(createHash('sha256').update(s).digest('hex'));
    const bytes = new Uint8Array(1000).map((_, i) => (i * 31) & 255);
    expect(sha256Hex(bytes)).toBe(createHash('sha256').update(bytes).digest('hex'));
  });
});

describe('canonicalJson', () => {
  test('sorts keys at every level, drops undefined members, keeps array order', () => {
    expect(canonicalJson({ b: [3, 1, { z: null, a: true }], a: 'é"', c: undefined })).toBe('{"a":"é\\"","b":[3,1,{"a":true,"z":null}]}');
    expect(canonicalJson({ y: 1, x: 2 })).toBe(canonicalJson({ x: 2, y: 1 }));
  });
  test('refuses values JSON cannot represent faithfully', () => {
    expect(() => canonicalJson({ lr: Number.NaN })).toThrow(/non-finite/);
    expect(() => canonicalJson({ f: () => 1 })).toThrow(/cannot hash a function/);
  });
});
