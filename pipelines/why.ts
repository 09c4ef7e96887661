/**
 * Rerun reasons, in the spirit of Snakemake's: for each node, is it cached, and if not, why will it
 * run (never built, params changed, activity version changed, an input changed, caching disabled).
 */
import { canonicalJson } from './hash';
import type { Plan, PlanNode } from './plan-types';
import type { ArtifactStore } from './store';

export interface NodeVerdict {
  node: PlanNode;
  cached: boolean;
  reason: string;
}

export function explainPlan(plan: Plan, store: ArtifactStore, previous: Map<string, string>): NodeVerdict[] {
  const committed = store.committedKeys();
  const willRun = new Set<string>();
  const out: NodeVerdict[] = [];
  for (const node of plan.nodes) {
    const cached = node.cache && committed.has(node.key);
    let reason = 'cached';
    if (!cached) {
      willRun.add(node.id);
      reason = reasonFor(node, store, previous, willRun);
    }
    out.push({ node, cached, reason });
  }
  return out;
}

function reasonFor(node: PlanNode, store: ArtifactStore, previous: Map<string, string>, willRun: Set<string>): string {
  if (!node.cache) return 'cache disabled for this step';
  const oldKey = previous.get(node.id);
  const old = oldKey && oldKey !== node.key ? store.lineage(oldKey) : undefined;
  if (old) {
    if (old.version !== node.version) return `activity ${node.uses} version changed (${old.version} → ${node.version})`;
    const changed = diffParams(old.params, node.params);
    if (changed.length) return `params changed: ${changed.join('; ')}`;
    return 'an input changed (upstream key differs)';
  }
  const upstreamRuns = node.needs.filter((id) => willRun.has(id));
  if (upstreamRuns.length) return `upstream will run: ${upstreamRuns.slice(0, 3).join(', ')}${upstreamRuns.length > 3 ? ', ...' : ''}`;
  if (oldKey === node.key) return 'previous attempt did not complete';
  return 'no artifact for this key yet';
}

export function diffParams(a: Record<string, unknown>, b: Record<string, unknown>): string[] {
  const keys = [...new Set([...Object.keys(a), ...Object.keys(b)])].sort();
  const out: string[] = [];
  for (const k of keys) {
    const x = canonicalJson(a[k]);
    const y = canonicalJson(b[k]);
    if (x !== y) out.push(`${k}: ${short(a[k] === undefined ? '(unset)' : x)} → ${short(b[k] === undefined ? '(unset)' : y)}`);
  }
  return out;
}

function short(s: string): string {
  return s.length > 40 ? s.slice(0, 37) + '...' : s;
}
