import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { symmetricEigen } from '../activities/control/mauve/eigen';
import { pcaProject, l2NormalizeRows } from '../activities/control/mauve/pca';
import { kmeans } from '../activities/control/mauve/kmeans';
import { computeMauve, divergenceCurve, mauveFromHistograms, resolveNumBuckets, type FeatureMatrix } from '../activities/control/mauve/mauve';
import { encodeNpy, parseNpy, readNpy, writeNpy } from '../activities/control/mauve/npy';
import { PythonRandom, Rng } from '../activities/control/util/rng';

function gaussianBlob(rng: Rng, rows: number, dim: number, centre: number[], spread: number): Float64Array {
  const out = new Float64Array(rows * dim);
  for (let i = 0; i < rows; i++) {
    for (let j = 0; j < dim; j++) {
      // Box–Muller
      const u = Math.max(rng.nextFloat(), 1e-12);
      const v = rng.nextFloat();
      out[i * dim + j] = centre[j] + spread * Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
    }
  }
  return out;
}

describe('PythonRandom', () => {
  it('reproduces CPython random.seed(0); random.shuffle(range(20))', () => {
    // python3 -c "import random; random.seed(0); l=list(range(20)); random.shuffle(l); print(l)"
    const items = Array.from({ length: 20 }, (_, i) => i);
    new PythonRandom(0).shuffle(items);
    expect(items).toEqual([10, 18, 16, 14, 0, 17, 11, 2, 3, 9, 5, 7, 4, 19, 6, 15, 8, 1, 13, 12]);
  });
  it('matches CPython for 4,007 items (the MAUVE reference count) and another seed', () => {
    const items = Array.from({ length: 4007 }, (_, i) => i);
    new PythonRandom(0).shuffle(items);
    expect(items.slice(0, 10)).toEqual([1311, 2187, 3016, 3900, 1333, 1090, 697, 2764, 1164, 1334]);
    expect(items.slice(-5)).toEqual([1722, 3646, 3104, 1577, 3458]);
    const other = Array.from({ length: 100 }, (_, i) => i);
    new PythonRandom(12345).shuffle(other);
    expect(other.slice(0, 10)).toEqual([63, 19, 83, 87, 88, 28, 8, 76, 46, 59]);
  });
});

describe('symmetricEigen', () => {
  it('diagonalises a random symmetric matrix: A v = λ v, orthonormal vectors, descending values', () => {
    const n = 9;
    const rng = new Rng(7);
    const a = new Float64Array(n * n);
    for (let i = 0; i < n; i++) for (let j = i; j < n; j++) a[i * n + j] = a[j * n + i] = rng.nextFloat() * 2 - 1;
    const { values, vectors } = symmetricEigen(a, n);
    for (let c = 0; c < n; c++) {
      if (c > 0) expect(values[c]).toBeLessThanOrEqual(values[c - 1]);
      for (let i = 0; i < n; i++) {
        let av = 0;
        for (let j = 0; j < n; j++) av += a[i * n + j] * vectors[c * n + j];
        expect(av).toBeCloseTo(values[c] * vectors[c * n + i], 10);
      }
      for (let o = 0; o < n; o++) {
        let dot = 0;
        for (let i = 0; i < n; i++) dot += vectors[c * n + i] * vectors[o * n + i];
        expect(dot).toBeCloseTo(c === o ? 1 : 0, 10);
      }
    }
    let trace = 0;
    for (let i = 0; i < n; i++) trace += a[i * n + i];
    expect(values.reduce((s, v) => s + v, 0)).toBeCloseTo(trace, 10);
  });
  it('handles a diagonal matrix with known eigenvalues', () => {
    const { values } = symmetricEigen(Float64Array.from([2, 0, 0, 0, 5, 0, 0, 0, -1]), 3);
    expect(Array.from(values)).toEqual([5, 2, -1]);
  });
});

describe('pcaProject', () => {
  it('keeps one component for points on a line and preserves distances along it', () => {
    // Points t·(3, 4) / 5 + offset: all variance on one direction.
    const ts = [-2, -1, 0, 1, 2, 5];
    const data = new Float64Array(ts.flatMap((t) => [1 + 0.6 * t, -2 + 0.8 * t]));
    const pca = pcaProject(data, ts.length, 2, 0.9);
    expect(pca.components).toBe(1);
    expect(pca.explainedVarianceRatio[0]).toBeCloseTo(1, 12);
    const mean = ts.reduce((s, t) => s + t, 0) / ts.length;
    ts.forEach((t, i) => expect(Math.abs(pca.projected[i])).toBeCloseTo(Math.abs(t - mean), 10));
  });
  it('picks the smallest count reaching the explained-variance threshold (variances 16 : 4 : 1)', () => {
    // Axis-aligned data with per-axis variance ratio 16:4:1 → ratios 16/21, 4/21, 1/21.
    const signs = [
      [1, 1, 1], [1, 1, -1], [1, -1, 1], [1, -1, -1], [-1, 1, 1], [-1, 1, -1], [-1, -1, 1], [-1, -1, -1],
    ];
    const data = new Float64Array(signs.flatMap(([a, b, c]) => [4 * a, 2 * b, c]));
    expect(pcaProject(data, 8, 3, 0.7).components).toBe(1);
    expect(pcaProject(data, 8, 3, 0.9).components).toBe(2); // 20/21 = 0.952
    expect(pcaProject(data, 8, 3, 0.99).components).toBe(3);
    const ratios = Array.from(pcaProject(data, 8, 3, 1).explainedVarianceRatio);
    [16 / 21, 4 / 21, 1 / 21].forEach((r, i) => expect(ratios[i]).toBeCloseTo(r, 12));
  });
  it('agrees between the covariance path (n ≥ d) and the Gram path (n < d)', () => {
    const rng = new Rng(3);
    const n = 6;
    const d = 10;
    const data = gaussianBlob(rng, n, d, new Array(d).fill(0), 1);
    const wide = pcaProject(data, n, d, 1); // n < d → Gram
    // Pad with copies of the mean? Instead compare pairwise distances in the projected space.
    for (let i = 0; i < n; i++) {
      for (let j = 0; j < n; j++) {
        let orig = 0;
        for (let k = 0; k < d; k++) orig += (data[i * d + k] - data[j * d + k]) ** 2;
        let proj = 0;
        for (let c = 0; c < wide.components; c++) proj += (wide.projected[i * wide.components + c] - wide.projected[j * wide.components + c]) ** 2;
        expect(proj).toBeCloseTo(orig, 8);
      }
    }
  });
  it('l2-normalises rows', () => {
    const out = l2NormalizeRows(Float64Array.from([3, 4, 0, 0]), 2, 2);
    [0.6, 0.8, 0, 0].forEach((v, i) => expect(out[i]).toBeCloseTo(v, 15));
  });
});

describe('kmeans', () => {
  it('recovers well-separated clusters and reports their objective', () => {
    const rng = new Rng(11);
    const centres = [[0, 0], [10, 0], [0, 10]];
    const blobs = centres.map((c) => gaussianBlob(rng, 30, 2, c, 0.3));
    const data = new Float64Array(90 * 2);
    blobs.forEach((b, i) => data.set(b, i * 60));
    const res = kmeans(data, 90, 2, { k: 3, restarts: 5, maxIterations: 500, seed: 27 });
    for (let b = 0; b < 3; b++) {
      const label = res.labels[b * 30];
      for (let i = 0; i < 30; i++) expect(res.labels[b * 30 + i]).toBe(label);
    }
    expect(new Set(Array.from(res.labels)).size).toBe(3);
    // Objective = Σ squared distances to the cluster means, computed independently.
    let expected = 0;
    for (let b = 0; b < 3; b++) {
      const mean = [0, 0];
      for (let i = 0; i < 30; i++) for (let j = 0; j < 2; j++) mean[j] += data[(b * 30 + i) * 2 + j] / 30;
      for (let i = 0; i < 30; i++) for (let j = 0; j < 2; j++) expected += (data[(b * 30 + i) * 2 + j] - mean[j]) ** 2;
    }
    expect(res.objective).toBeCloseTo(expected, 8);
  });
  it('is deterministic for a seed', () => {
    const data = gaussianBlob(new Rng(5), 50, 3, [0, 0, 0], 1);
    const a = kmeans(data, 50, 3, { k: 5, restarts: 2, maxIterations: 100, seed: 1 });
    const b = kmeans(data, 50, 3, { k: 5, restarts: 2, maxIterations: 100, seed: 1 });
    expect(Array.from(a.labels)).toEqual(Array.from(b.labels));
    expect(a.objective).toBe(b.objective);
  });
  it('rejects k larger than the number of points', () => {
    expect(() => kmeans(new Float64Array(4), 2, 2, { k: 3, restarts: 1, maxIterations: 10, seed: 0 })).toThrow(/exceeds/);
  });
});

describe('MAUVE', () => {
  const opts = { divergenceCurveDiscretization: 25, scalingFactor: 5, areaMode: 'symmetric' as const };
  it('matches hand-computed values on small histograms (independent Python evaluation of the formula)', () => {
    // Values from a plain-Python evaluation of the curve + trapezoid (see the test's comment in git history).
    expect(mauveFromHistograms([0.5, 0.5], [1, 0], opts).mauve).toBeCloseTo(0.2781137253672402, 12);
    expect(mauveFromHistograms([0.2, 0.3, 0.5], [0.5, 0.3, 0.2], opts).mauve).toBeCloseTo(0.821409983611646, 12);
    expect(mauveFromHistograms([1, 0], [0, 1], opts).mauve).toBeCloseTo(0.004072096261961258, 12);
  });
  it('gives 1 for identical histograms and a 27-point curve with both extremes', () => {
    const { mauve, curve } = mauveFromHistograms([0.25, 0.75], [0.25, 0.75], opts);
    expect(mauve).toBeCloseTo(1, 12);
    expect(curve).toHaveLength(27);
    expect(curve[0]).toEqual([1, 0]);
    expect(curve[26]).toEqual([0, 1]);
  });
  it('first curve point uses w = 1e-6: KL(q‖r) ≈ 0 so x ≈ 1', () => {
    const curve = divergenceCurve([1, 0], [0, 1], 25, 5);
    expect(curve[1][0]).toBeCloseTo(Math.pow(1 - 1e-6, 5), 12);
    expect(curve[1][1]).toBeCloseTo(Math.pow(1e-6, 5), 12);
  });
  it('num_buckets auto = max(2, round(min(|P|,|Q|)/10)) with Python rounding', () => {
    expect(resolveNumBuckets('auto', 4007, 4007)).toBe(401);
    expect(resolveNumBuckets('auto', 8500, 4007)).toBe(401);
    expect(resolveNumBuckets('auto', 15, 100)).toBe(2); // round(1.5) = 2
    expect(resolveNumBuckets('auto', 25, 100)).toBe(2); // round(2.5) = 2 (banker's)
    expect(resolveNumBuckets('auto', 35, 100)).toBe(4);
    expect(resolveNumBuckets('auto', 5, 5)).toBe(2);
  });
  it('is ≈1 for features from the same distribution and ≈0 for disjoint ones', () => {
    const rng = new Rng(42);
    const dim = 8;
    const sameP: FeatureMatrix = { rows: 300, dim, data: gaussianBlob(rng, 300, dim, new Array(dim).fill(1), 1) };
    const sameQ: FeatureMatrix = { rows: 300, dim, data: gaussianBlob(rng, 300, dim, new Array(dim).fill(1), 1) };
    const same = computeMauve(sameP, sameQ, { numBuckets: 10 });
    expect(same.mauve).toBeGreaterThan(0.9);
    const identical = computeMauve(sameP, sameP);
    expect(identical.mauve).toBeCloseTo(1, 10);
    expect(identical.numBuckets).toBe(30);

    const farCentre = new Array(dim).fill(0);
    farCentre[0] = 1;
    const otherCentre = new Array(dim).fill(0);
    otherCentre[1] = 1;
    const far: FeatureMatrix = { rows: 300, dim, data: gaussianBlob(rng, 300, dim, farCentre.map((x) => 50 * x), 1) };
    const other: FeatureMatrix = { rows: 300, dim, data: gaussianBlob(rng, 300, dim, otherCentre.map((x) => 50 * x), 1) };
    const disjoint = computeMauve(far, other);
    expect(disjoint.mauve).toBeLessThan(0.01);
  });
  it('names the offending row for non-finite features and rejects mismatched dimensions', () => {
    const p: FeatureMatrix = { rows: 2, dim: 2, data: Float64Array.from([0, 1, NaN, 1]) };
    const q: FeatureMatrix = { rows: 2, dim: 2, data: Float64Array.from([0, 1, 1, 1]) };
    expect(() => computeMauve(p, q)).toThrow(/P row 1/);
    expect(() => computeMauve(p, { rows: 1, dim: 3, data: new Float64Array(3) })).toThrow(/dimensions/);
  });
});

describe('.npy features', () => {
  it('round-trips float32 matrices through an atomic write', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'control-npy-'));
    const file = path.join(dir, 'f.npy');
    writeNpy(file, { rows: 2, dim: 3, data: Float64Array.from([1, 2, 3, 4.5, -5, 6]) });
    const back = readNpy(file);
    expect(back.rows).toBe(2);
    expect(back.dim).toBe(3);
    expect(Array.from(back.data)).toEqual([1, 2, 3, 4.5, -5, 6]);
    expect(fs.readdirSync(dir)).toEqual(['f.npy']);
    fs.rmSync(dir, { recursive: true });
  });
  it('reads a hand-assembled float64 v1.0 file and rejects bad ones clearly', () => {
    const header = "{'descr': '<f8', 'fortran_order': False, 'shape': (1, 2), }";
    const padded = header + ' '.repeat(64 - ((10 + header.length + 1) % 64)) + '\n';
    const head = Buffer.alloc(10);
    head.write('\x93NUMPY', 0, 'latin1');
    head[6] = 1;
    head.writeUInt16LE(padded.length, 8);
    const body = Buffer.alloc(16);
    body.writeDoubleLE(0.25, 0);
    body.writeDoubleLE(-7, 8);
    const m = parseNpy(Buffer.concat([head, Buffer.from(padded, 'latin1'), body]));
    expect(Array.from(m.data)).toEqual([0.25, -7]);
    expect(() => parseNpy(Buffer.from('hello world!'), 'x.npy')).toThrow(/x\.npy.*magic/);
    const full = encodeNpy({ rows: 2, dim: 2, data: new Float64Array(4) });
    const truncated = full.subarray(0, full.length - 4);
    expect(() => parseNpy(truncated, 't.npy')).toThrow(/t\.npy.*data bytes/);
  });
});

import { equalise, parseReferenceList, referencesFromStream } from '../activities/control/mauve/texts';

describe('MAUVE texts', () => {
  it('equalises the larger side with the Python shuffle', () => {
    const p = Array.from({ length: 20 }, (_, i) => i);
    const { p: kept, q } = equalise(p, [0, 0, 0], 'python-mt');
    expect(kept).toEqual([10, 18, 16]);
    expect(q).toHaveLength(3);
    expect(equalise(p, [1], 'none').p).toHaveLength(20);
  });
  it('builds references as EOS + the first tokens of every document', () => {
    const EOS = 9;
    const stream = [1, 2, 3, 9, 4, 9, 9, 5, 6, 7, 8, 9];
    const refs = referencesFromStream(stream, EOS, (ids) => ids.join(','), { prefixTokens: 3 });
    expect(refs).toEqual(['9,1,2', '9,4', '9,5,6']);
    expect(referencesFromStream(stream, EOS, (ids) => ids.join(','), { prefixTokens: 3, max: 1 })).toHaveLength(1);
  });
  it('parses a reference list and names bad files', () => {
    expect(parseReferenceList('["a", "b"]', 'x.json')).toEqual(['a', 'b']);
    expect(() => parseReferenceList('{"a": 1}', 'x.json')).toThrow(/x\.json: expected a JSON list/);
  });
});
