/**
 * The plan: what the pure planner produces and both engines execute. Plain JSON-able data, so it can
 * cross into a Temporal workflow as-is.
 */
import type { Resources } from './activity';

export interface PlanNode {
  /** `<step>/<item>`, or `<step>` when the step has no matrix. Unique within a plan. */
  id: string;
  step: string;
  /** Stable item id built from the matrix values ('' when no matrix). */
  item: string;
  /** The matrix values of this item. */
  matrix: Record<string, unknown>;
  /** Activity name (dag.yaml `uses`). */
  uses: string;
  /** Activity version at planning time (part of the key). */
  version: string;
  /** Fully resolved params: defaults ← step params ← profile ← --set overrides ← matrix values. */
  params: Record<string, unknown>;
  /** Ids of the nodes this one reads (upstream), in a stable order. */
  needs: string[];
  /** Content address: sha256 of activity name + version + canonical params + input keys. */
  key: string;
  resources: Resources;
  /** Extra attempts after the first failure. */
  retries: number;
  /** false: always rerun (the key still names the artifact). */
  cache: boolean;
}

export interface Plan {
  /** Profile the plan was made for. */
  profile: string;
  /** Steps asked for (before adding their upstream). */
  targets: string[];
  /** Topologically ordered: every node comes after all of its needs. */
  nodes: PlanNode[];
  /** sha256 of the canonical plan (node ids + keys): identifies "the same run". */
  planHash: string;
}
