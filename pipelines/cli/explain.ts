/** `pipeline explain <node>`: its key, what the key is made of, lineage, and why it would rerun. */
import { previousKeys } from '../run-record';
import { explainPlan } from '../why';
import { dagPath, makePlan, openStore, parse, PLAN_OPTIONS, printJson, UsageError } from './common';

export async function run(argv: string[]): Promise<number> {
  const { values, positionals } = parse(argv, PLAN_OPTIONS);
  if (values.help || positionals.length !== 1) {
    process.stdout.write('usage: pipeline explain <step|step/item> [--profile P] [--set ...] [--json]\n');
    return values.help ? 0 : 2;
  }
  const { plan } = makePlan(dagPath(values), values.profile, values.set ?? [], ['all']);
  const store = openStore(values);
  const wanted = positionals[0];
  const node = plan.nodes.find((n) => n.id === wanted) ?? (plan.nodes.filter((n) => n.step === wanted).length === 1 ? plan.nodes.find((n) => n.step === wanted) : undefined);
  if (!node) {
    const candidates = plan.nodes.filter((n) => n.id.startsWith(wanted)).map((n) => n.id);
    throw new UsageError(`no node "${wanted}"${candidates.length ? `; did you mean: ${candidates.slice(0, 8).join(', ')}` : ''}`);
  }
  const verdict = explainPlan(plan, store, previousKeys(store)).find((v) => v.node.id === node.id)!;
  const lineage = store.lineage(node.key);
  const byId = new Map(plan.nodes.map((n) => [n.id, n]));
  const inputs = node.needs.map((id) => ({ node: id, key: byId.get(id)!.key, committed: store.has(byId.get(id)!.key) }));
  const out = {
    id: node.id,
    key: node.key,
    uses: node.uses,
    version: node.version,
    params: node.params,
    inputs,
    resources: node.resources,
    cached: verdict.cached,
    reason: verdict.reason,
    artifact: lineage ? store.artifactDir(node.key) : null,
    lineage: lineage ?? null,
  };
  if (values.json) {
    printJson(out);
    return 0;
  }
  process.stdout.write(
    `node     ${out.id}\nkey      ${out.key}\nactivity ${out.uses}@${out.version}\nstate    ${out.cached ? 'cached' : `will run: ${out.reason}`}\n` +
      `params   ${JSON.stringify(out.params)}\n` +
      `inputs\n${inputs.map((i) => `  ${i.node}  ${i.key.slice(0, 12)}  ${i.committed ? 'committed' : 'missing'}`).join('\n') || '  (none)'}\n`,
  );
  if (lineage) {
    process.stdout.write(
      `artifact ${out.artifact}\nlineage  run ${lineage.runId}, attempt ${lineage.attempt}, ${lineage.host} pid ${lineage.pid}, ` +
        `${lineage.startedAt} → ${lineage.endedAt} (${(lineage.durationMs / 1000).toFixed(1)} s), code ${lineage.codeVersion}\n` +
        `summary  ${JSON.stringify(lineage.summary)}\n`,
    );
  }
  return 0;
}
