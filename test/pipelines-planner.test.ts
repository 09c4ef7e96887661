import * as fs from 'fs';
import * as path from 'path';
import { DagError } from '../pipelines/dag-loader';
import { DAGS, planFile, planText } from './helpers/pipeline-fixtures';

const SWEEP = path.join(DAGS, 'sweep.yaml');

describe('planner', () => {
  test('expands the matrix into nodes in dependency order with stable ids', () => {
    const plan = planFile(SWEEP);
    expect(plan.nodes.map((n) => n.id)).toEqual(['source', 'sweep/x=a', 'sweep/x=b', 'sweep/x=c', 'score/x=a', 'score/x=b', 'score/x=c', 'aggregate']);
    const scoreB = plan.nodes.find((n) => n.id === 'score/x=b')!;
    expect(scoreB.needs).toEqual(['sweep/x=b']);
    expect(scoreB.params).toEqual({ value: 'score b' });
    expect(plan.nodes.find((n) => n.id === 'sweep/x=c')!.params).toEqual({ n: 5, stepMs: 20 });
    expect(plan.nodes.find((n) => n.id === 'aggregate')!.needs).toEqual(['score/x=a', 'score/x=b', 'score/x=c']);
  });

  test('keys are stable across runs and independent of key order in the YAML', () => {
    const a = planFile(SWEEP);
    const b = planFile(SWEEP);
    expect(b.nodes.map((n) => n.key)).toEqual(a.nodes.map((n) => n.key));
    const reordered = `
profiles:
  paper:
    steps:
      sweep: { params: { stepMs: 50 } }
  tiny:
    steps:
      sweep: { params: { stepMs: 20 } }
steps:
  aggregate: { needs: [score], params: { value: aggregate }, uses: builtin.echo }
  score:
    params: { value: "score \${matrix.x}" }
    matrix: { x: [{ id: a }, { id: b }, { id: c }] }
    needs: [sweep]
    uses: builtin.echo
  sweep:
    params: { stepMs: 20, n: "\${matrix.x.n}" }
    matrix: { x: [{ n: 3, id: a }, { n: 4, id: b }, { id: c, n: 5 }] }
    needs: [source]
    uses: builtin.count
  source: { params: { value: source }, uses: builtin.echo }
default_profile: tiny
version: 1
`;
    const c = planText(reordered);
    expect(Object.fromEntries(c.nodes.map((n) => [n.id, n.key]))).toEqual(Object.fromEntries(a.nodes.map((n) => [n.id, n.key])));
    expect(c.planHash).toBe(a.planHash);
  });

  test('changing one sweep item invalidates exactly that item and its downstream', () => {
    const before = planFile(SWEEP);
    const text = fs.readFileSync(SWEEP, 'utf8').replace('{ id: b, n: 4 }', '{ id: b, n: 7 }');
    const after = planText(text);
    const changed = after.nodes.filter((n, i) => n.key !== before.nodes[i].key).map((n) => n.id);
    expect(changed).toEqual(['sweep/x=b', 'score/x=b', 'aggregate']);
  });

  test('profiles and --set overrides change params and keys', () => {
    const tiny = planFile(SWEEP);
    const paper = planFile(SWEEP, { profile: 'paper' });
    expect(paper.nodes.find((n) => n.id === 'sweep/x=a')!.params.stepMs).toBe(50);
    expect(paper.nodes.find((n) => n.id === 'source')!.key).toBe(tiny.nodes.find((n) => n.id === 'source')!.key);
    const set = planFile(SWEEP, { overrides: { source: { value: 'other' } } });
    expect(set.nodes.filter((n, i) => n.key !== tiny.nodes[i].key)).toHaveLength(8);
  });

  test('targets keep only the asked nodes and their upstream', () => {
    const plan = planFile(SWEEP, { targets: ['score/x=b'] });
    expect(plan.nodes.map((n) => n.id)).toEqual(['source', 'sweep/x=b', 'score/x=b']);
  });

  test('matrix include/exclude and where-filtered needs', () => {
    const plan = planText(`
version: 1
steps:
  train:
    uses: builtin.echo
    matrix: { model: [backpack, transformer], size: [micro, mini], exclude: [{ model: transformer, size: mini }], include: [{ model: backpack, size: small }] }
    params: { value: "\${matrix.model}-\${matrix.size}" }
  topic:
    uses: builtin.echo
    needs: [{ step: train, where: { model: backpack, size: micro } }]
    matrix: { strength: [0, 1, 2, 3] }
    params: { value: "\${matrix.strength}" }
`);
    const train = plan.nodes.filter((n) => n.step === 'train').map((n) => n.id);
    expect(train).toEqual(['train/model=backpack,size=micro', 'train/model=backpack,size=mini', 'train/model=transformer,size=micro', 'train/model=backpack,size=small']);
    const topic = plan.nodes.filter((n) => n.step === 'topic');
    expect(topic).toHaveLength(4);
    expect(topic[2].params.value).toBe(2);
    for (const t of topic) expect(t.needs).toEqual(['train/model=backpack,size=micro']);
  });
});

describe('dag.yaml errors name file, line, column and what is wrong', () => {
  const expectError = (text: string, line: number, pattern: RegExp) => {
    try {
      planText(text);
    } catch (err) {
      expect(err).toBeInstanceOf(DagError);
      const e = err as DagError;
      expect(e.message).toMatch(pattern);
      expect(e.file).toBe('dag.yaml');
      expect(e.line).toBe(line);
      expect(e.column).toBeGreaterThan(0);
      return;
    }
    throw new Error('expected a DagError');
  };

  test('unknown activity', () => {
    expectError(`version: 1\nsteps:\n  a:\n    uses: no.such.activity\n`, 4, /unknown activity "no.such.activity"/);
  });
  test('unknown param', () => {
    expectError(`version: 1\nsteps:\n  a:\n    uses: builtin.echo\n    params:\n      value: 1\n      colour: red\n`, 7, /unknown param "colour"/);
  });
  test('ill-typed param', () => {
    expectError(`version: 1\nsteps:\n  a:\n    uses: builtin.count\n    params:\n      n: many\n`, 6, /param "n" of activity "builtin.count"/);
  });
  test('cycle with its path', () => {
    expectError(
      `version: 1\nsteps:\n  a:\n    uses: builtin.echo\n    needs: [c]\n  b:\n    uses: builtin.echo\n    needs: [a]\n  c:\n    uses: builtin.echo\n    needs: [b]\n`,
      5,
      /cycle in needs: a → c → b → a/,
    );
  });
  test('missing needs', () => {
    expectError(`version: 1\nsteps:\n  a:\n    uses: builtin.echo\n    needs: [ghost]\n`, 5, /needs unknown step "ghost"/);
  });
  test('empty matrix row', () => {
    expectError(`version: 1\nsteps:\n  a:\n    uses: builtin.echo\n    matrix:\n      x: []\n`, 6, /matrix row "x" of step "a" is empty/);
  });
  test('exploding matrix over the limit', () => {
    expectError(
      `version: 1\nmatrix_limit: 100\nsteps:\n  a:\n    uses: builtin.echo\n    matrix:\n      x: [1,2,3,4,5,6,7,8,9,10]\n      y: [1,2,3,4,5,6,7,8,9,10,11]\n`,
      7,
      /expands to 110 items, over the limit of 100/,
    );
  });
  test('schema errors: unknown key and bad YAML', () => {
    expectError(`version: 1\nsteps:\n  a:\n    uses: builtin.echo\n    retry: 3\n`, 5, /unknown key\(s\) retry/);
    expectError(`version: 1\nsteps:\n  a:\n    uses: [unclosed\n`, 5, /invalid YAML/);
  });
  test('unknown profile and unknown matrix placeholder', () => {
    expect(() => planText(`version: 1\nsteps:\n  a: { uses: builtin.echo }\nprofiles:\n  tiny: {}\n`, { profile: 'huge' })).toThrow(/unknown profile "huge"/);
    expect(() => planText(`version: 1\nsteps:\n  a: { uses: builtin.echo, params: { value: "\${matrix.nope}" } }\n`)).toThrow(/names no matrix key/);
  });
});

describe('profiles can skip steps', () => {
  test('a skipped step leaves the plan and its needs are dropped', () => {
    const text = `
version: 1
steps:
  corpus: { uses: builtin.echo, params: { value: corpus } }
  bpe: { uses: builtin.echo, needs: [corpus], params: { value: bpe } }
  tokens: { uses: builtin.echo, needs: [corpus, bpe], params: { value: tokens } }
profiles:
  tiny: {}
  paper: { steps: { bpe: { skip: true } } }
`;
    expect(planText(text, { profile: 'tiny' }).nodes.map((n) => n.id)).toEqual(['corpus', 'bpe', 'tokens']);
    const paper = planText(text, { profile: 'paper' });
    expect(paper.nodes.map((n) => n.id)).toEqual(['corpus', 'tokens']);
    expect(paper.nodes[1].needs).toEqual(['corpus']);
    expect(() => planText(text, { profile: 'paper', targets: ['bpe'] })).toThrow(/skipped in profile "paper"/);
  });
});

describe('vars', () => {
  test('profile vars reach params and needs filters', () => {
    const text = `
version: 1
vars: { size: tiny, samples: 4 }
steps:
  train: { uses: builtin.echo, matrix: { size: [tiny, small] }, params: { value: "\${matrix.size}" } }
  topic: { uses: builtin.echo, needs: [{ step: train, where: { size: "\${vars.size}" } }], params: { value: "\${vars.samples}" } }
profiles:
  tiny: {}
  paper: { vars: { size: small, samples: 500 } }
`;
    const tiny = planText(text, { profile: 'tiny' }).nodes.find((n) => n.step === 'topic')!;
    expect(tiny.needs).toEqual(['train/size=tiny']);
    expect(tiny.params.value).toBe(4);
    const paper = planText(text, { profile: 'paper' }).nodes.find((n) => n.step === 'topic')!;
    expect(paper.needs).toEqual(['train/size=small']);
    expect(paper.params.value).toBe(500);
  });
});

test('activity default resources apply unless dag.yaml overrides them', () => {
  const plan = planText(`version: 1\nsteps:\n  a: { uses: builtin.echo }\n  b: { uses: builtin.echo, params: { value: 1 }, resources: { cpus: 3 } }\n`, {});
  // builtin.echo declares no resources: the engine defaults apply
  expect(plan.nodes[0].resources).toEqual({ cpus: 1, gpus: 0, memoryMb: 512 });
  expect(plan.nodes[1].resources.cpus).toBe(3);
  const tok = planText(`version: 1\nsteps:\n  t: { uses: data.tokenize }\n`, {});
  expect(tok.nodes[0].resources.cpus).toBe(2); // data.tokenize's own default
});

test('an ill-typed value in one sweep item is caught, naming the item', () => {
  const text = `version: 1\nsteps:\n  s:\n    uses: builtin.count\n    matrix:\n      n: [1, 2, three, 4]\n    params: { n: "\${matrix.n}" }\n`;
  expect(() => planText(text)).toThrow(/dag.yaml:6:\d+: step "s" item "n=three": param "n" of activity "builtin.count"/);
});
