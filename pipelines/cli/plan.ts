/** `pipeline plan [targets]`: what would run, what is cached, and why. */
import { previousKeys } from '../run-record';
import { explainPlan } from '../why';
import { dagPath, makePlan, openStore, parse, PLAN_OPTIONS, printJson, table } from './common';

export async function run(argv: string[]): Promise<number> {
  const { values, positionals } = parse(argv, PLAN_OPTIONS);
  if (values.help) {
    process.stdout.write('usage: pipeline plan [targets|all] [--profile P] [--set step.param=value ...] [--json]\n');
    return 0;
  }
  const { plan } = makePlan(dagPath(values), values.profile, values.set ?? [], positionals);
  const store = openStore(values);
  const verdicts = explainPlan(plan, store, previousKeys(store));
  const toRun = verdicts.filter((v) => !v.cached).length;
  if (values.json) {
    printJson({
      profile: plan.profile,
      planHash: plan.planHash,
      nodes: verdicts.map((v) => ({ id: v.node.id, step: v.node.step, item: v.node.item, key: v.node.key, cached: v.cached, reason: v.reason })),
      total: verdicts.length,
      toRun,
    });
    return 0;
  }
  const rows = verdicts.map((v) => [v.node.id, v.node.key.slice(0, 12), v.cached ? 'cached' : 'RUN', v.cached ? '' : v.reason]);
  process.stdout.write(table(rows, ['node', 'key', 'state', 'reason']));
  process.stdout.write(`\nprofile ${plan.profile}: ${verdicts.length} nodes, ${verdicts.length - toRun} cached, ${toRun} to run\n`);
  return 0;
}
