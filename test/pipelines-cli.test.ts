import * as fs from 'fs';
import * as path from 'path';
import { ArtifactStore, COMPLETE_FILE, LINEAGE_FILE } from '../pipelines/store';
import { runCli, spawnCli } from './helpers/cli';
import { artifactContents, DAGS, tempDir } from './helpers/pipeline-fixtures';

const KILLABLE = path.join(DAGS, 'killable.yaml');

function checkNoPartialArtifacts(store: ArtifactStore) {
  for (const key of store.committedKeys()) {
    const dir = store.artifactDir(key);
    expect(fs.existsSync(path.join(dir, COMPLETE_FILE))).toBe(true);
    expect(fs.existsSync(path.join(dir, LINEAGE_FILE))).toBe(true);
    const files = fs.readdirSync(dir).filter((f) => !f.startsWith('.'));
    expect(files.length).toBeGreaterThan(0);
    for (const f of files) expect(() => JSON.parse(fs.readFileSync(path.join(dir, f), 'utf8'))).not.toThrow();
  }
}

describe('pipeline CLI', () => {
  test('plan shows cached state and rerun reasons; explain and status report the node and run', () => {
    const dir = tempDir();
    const store = path.join(dir, 'store');
    const plan1 = JSON.parse(runCli(['plan', '--dag', KILLABLE, '--store', store, '--json']).stdout);
    expect(plan1.total).toBe(13);
    expect(plan1.toRun).toBe(13);
    expect(plan1.nodes[0].reason).toBe('no artifact for this key yet');
    const r = runCli(['run', 'all', '--dag', KILLABLE, '--store', store]);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/finished .*13 ran, 0 cached, 0 failed/);
    const plan2 = JSON.parse(runCli(['plan', '--dag', KILLABLE, '--store', store, '--json']).stdout);
    expect(plan2.toRun).toBe(0);
    const plan3 = JSON.parse(runCli(['plan', '--dag', KILLABLE, '--store', store, '--json', '--set', 'count.stepMs=61']).stdout);
    expect(plan3.toRun).toBe(13);
    expect(plan3.nodes.find((n: { id: string }) => n.id === 'count/i=16').reason).toBe('params changed: stepMs: 60 → 61');
    expect(plan3.nodes.find((n: { id: string }) => n.id === 'label/i=16').reason).toMatch(/an input changed|upstream will run/);
    const explain = JSON.parse(runCli(['explain', 'label/i=24', '--dag', KILLABLE, '--store', store, '--json']).stdout);
    expect(explain.cached).toBe(true);
    expect(explain.inputs).toEqual([expect.objectContaining({ node: 'count/i=24', committed: true })]);
    expect(explain.lineage.params).toEqual({ value: 'label 24' });
    const status = JSON.parse(runCli(['status', '--store', store, '--json']).stdout);
    expect(status.status).toBe('succeeded');
    expect(status.counts.succeeded).toBe(13);
  });

  test('usage and config errors exit 2 with a located message', () => {
    const dir = tempDir();
    const bad = path.join(dir, 'bad.yaml');
    fs.writeFileSync(bad, 'version: 1\nsteps:\n  a:\n    uses: builtin.echo\n    needs: [ghost]\n');
    const r = runCli(['run', '--dag', bad, '--store', path.join(dir, 's')]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`${bad}:5:13: step "a" needs unknown step "ghost"`);
    expect(runCli(['run', '--jobs', 'many', '--dag', KILLABLE, '--store', path.join(dir, 's')]).code).toBe(2);
    expect(runCli(['frobnicate']).code).toBe(2);
  });

  test('failed item: exit 1, status lists it, resume reruns only it and its downstream', () => {
    const dir = tempDir();
    const store = path.join(dir, 'store');
    const dag = path.join(dir, 'dag.yaml');
    const marker = path.join(dir, 'ok');
    fs.writeFileSync(
      dag,
      `version: 1\nsteps:\n  s:\n    uses: builtin.fail\n    matrix: { i: [0, 1, 2, 3] }\n    params: { unlessFileExists: "${marker}\${matrix.i}", value: "\${matrix.i}" }\n  t:\n    uses: builtin.echo\n    needs: [s]\n`,
    );
    for (const i of [0, 1, 3]) fs.writeFileSync(marker + i, '');
    const first = runCli(['run', '--dag', dag, '--store', store, '-k', '-j', '1']);
    expect(first.code).toBe(1);
    expect(first.stdout).toMatch(/failed items:\n {2}s\/i=2/);
    const status = JSON.parse(runCli(['status', '--store', store, '--json']).stdout);
    expect(status.failed).toEqual([expect.objectContaining({ id: 's/i=2' })]);
    fs.writeFileSync(marker + 2, '');
    const resumed = runCli(['resume', '--store', store, '--json']);
    expect(resumed.code).toBe(0);
    const events = resumed.stdout.trim().split('\n').map((l) => JSON.parse(l));
    expect(events.filter((e) => e.event === 'succeeded').map((e) => e.nodeId).sort()).toEqual(['s/i=2', 't']);
    expect(events.filter((e) => e.event === 'cached')).toHaveLength(3);
    // the resumed run kept the options the first run was started with
    const runs = path.join(store, 'runs');
    const latest = JSON.parse(fs.readFileSync(path.join(runs, fs.readFileSync(path.join(runs, 'LATEST'), 'utf8').trim() + '.json'), 'utf8'));
    expect(latest.request).toMatchObject({ keepGoing: true, jobs: 1, engine: 'local' });
  });

  test('kill -9 at 10 random moments, then resume: same keys and contents as an uninterrupted run', async () => {
    const dir = tempDir();
    const reference = path.join(dir, 'reference');
    expect(runCli(['run', '--dag', KILLABLE, '--store', reference, '-j', '2']).code).toBe(0);
    const expected = artifactContents(new ArtifactStore(reference));
    expect(Object.keys(expected)).toHaveLength(13);

    const storeDir = path.join(dir, 'killed');
    const store = new ArtifactStore(storeDir);
    // Deterministic "random" kill points spread over the run's length.
    let seed = 12345;
    const rand = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
    let kills = 0;
    for (let i = 0; i < 10; i++) {
      // Resume when a run record exists (a kill can land before the first run wrote one).
      const hasRecord = fs.existsSync(path.join(storeDir, 'runs', 'LATEST'));
      const child = spawnCli(hasRecord ? ['resume', '--store', storeDir, '-j', '2'] : ['run', '--dag', KILLABLE, '--store', storeDir, '-j', '2']);
      const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
      // Kill at a random moment after the run has really started (its first output line), so a slow
      // machine does not turn every kill into a kill during start-up.
      const delay = Math.floor(rand() * 600);
      let timer: NodeJS.Timeout | undefined;
      child.stdout!.once('data', () => (timer = setTimeout(() => child.kill('SIGKILL'), delay)));
      const code = await exited;
      clearTimeout(timer);
      if (code === null) kills++;
      checkNoPartialArtifacts(store);
    }
    expect(kills).toBeGreaterThanOrEqual(5);
    const final = runCli(['resume', '--store', storeDir]);
    expect(final.code).toBe(0);
    checkNoPartialArtifacts(store);
    expect(artifactContents(store)).toEqual(expected);
    expect(fs.readdirSync(path.join(storeDir, 'tmp')).filter((d) => !d.includes('.old.'))).toHaveLength(0);
  }, 180_000);
});
