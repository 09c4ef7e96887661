/**
 * The pure planner: (dag, profile, overrides, activity versions) → plan. No I/O and no Node APIs:
 * the Temporal workflow imports this module inside its deterministic sandbox.
 *
 * Rules (documented in README "dag.yaml"):
 * - params = step params ← profile params ← --set overrides; matrix values reach params only through
 *   placeholders: ${matrix.<key>}, ${matrix.<key>.<field>} (object values), ${item}, ${profile}.
 *   A string that is exactly one placeholder takes the value's type.
 * - A node needs the upstream items that agree with it on every matrix key both steps have,
 *   further filtered by `where:`; a step without shared keys needs every item of the upstream.
 * - key = sha256(canonical {uses, version, params, inputs: upstream keys}).
 */
import { DEFAULT_RESOURCES, type Resources } from './activity';
import { DEFAULT_MATRIX_LIMIT, type DagDocument, type MatrixSpec, type StepSpec } from './dag-schema';
import { canonicalJson, sha256Hex } from './hash';
import type { Plan, PlanNode } from './plan-types';

export type DocPath = (string | number)[];

/** A planning error that points into dag.yaml (the loader turns the path into line:column). */
export class PlanError extends Error {
  constructor(message: string, readonly path: DocPath) {
    super(message);
    this.name = 'PlanError';
  }
}

/** `--set step.param=value` after parsing: step → param → value (`matrix.<key>` sets a matrix row). */
export type Overrides = Record<string, Record<string, unknown>>;

export interface PlanRequest {
  dag: DagDocument;
  profile?: string;
  overrides?: Overrides;
  /** activity name → version */
  versions: Record<string, string>;
  /** activity name → its default resources (dag.yaml `resources:` override them). */
  activityResources?: Record<string, Partial<Resources>>;
  /** Step names or node ids (`step/item`); empty or ['all'] means every step. */
  targets?: string[];
}

interface EffectiveStep {
  name: string;
  skip: boolean;
  spec: StepSpec;
  params: Record<string, unknown>;
  matrix: MatrixSpec | undefined;
  resources: Resources;
  retries: number;
}

interface Item {
  id: string;
  values: Record<string, unknown>;
}

export function resolveProfileName(dag: DagDocument, requested?: string): string {
  const name = requested ?? dag.default_profile ?? 'tiny';
  const profiles = dag.profiles ?? {};
  if (Object.keys(profiles).length > 0 && !(name in profiles)) {
    throw new PlanError(`unknown profile "${name}" (known: ${Object.keys(profiles).join(', ')})`, ['profiles']);
  }
  return name;
}

function effectiveSteps(
  dag: DagDocument,
  profile: string,
  overrides: Overrides,
  activityResources: Record<string, Partial<Resources>>,
): Map<string, EffectiveStep> {
  const prof = dag.profiles?.[profile];
  for (const stepName of Object.keys(prof?.steps ?? {})) {
    if (!(stepName in dag.steps)) {
      throw new PlanError(`profile "${profile}" overrides unknown step "${stepName}"`, ['profiles', profile, 'steps', stepName]);
    }
  }
  for (const stepName of Object.keys(overrides)) {
    if (!(stepName in dag.steps)) throw new PlanError(`--set names unknown step "${stepName}"`, ['steps']);
  }
  const out = new Map<string, EffectiveStep>();
  for (const [name, spec] of Object.entries(dag.steps)) {
    const ps = prof?.steps?.[name];
    const params: Record<string, unknown> = { ...(spec.params ?? {}), ...(ps?.params ?? {}) };
    let matrix: MatrixSpec | undefined = spec.matrix || ps?.matrix ? { ...(spec.matrix ?? {}), ...(ps?.matrix ?? {}) } : undefined;
    for (const [key, value] of Object.entries(overrides[name] ?? {})) {
      if (key.startsWith('matrix.')) {
        const mk = key.slice('matrix.'.length);
        matrix = { ...(matrix ?? {}), [mk]: Array.isArray(value) ? value : [value] } as MatrixSpec;
      } else params[key] = value;
    }
    const resources: Resources = {
      ...DEFAULT_RESOURCES,
      ...(activityResources[spec.uses] ?? {}),
      ...(spec.resources ?? {}),
      ...(ps?.resources ?? {}),
    } as Resources;
    out.set(name, { name, skip: ps?.skip ?? false, spec, params, matrix, resources, retries: ps?.retries ?? spec.retries ?? 0 });
  }
  return out;
}

function valueId(v: unknown): string {
  if (v !== null && typeof v === 'object' && 'id' in (v as object)) return String((v as { id: unknown }).id);
  return String(v);
}

function itemId(values: Record<string, unknown>): string {
  return Object.keys(values)
    .sort()
    .map((k) => `${k}=${valueId(values[k])}`)
    .join(',');
}

function matches(values: Record<string, unknown>, filter: Record<string, unknown>): boolean {
  for (const [k, v] of Object.entries(filter)) {
    if (!(k in values) || valueId(values[k]) !== valueId(v)) return false;
  }
  return true;
}

/** Cartesian product of the matrix rows, minus `exclude`, plus `include`. */
export function expandMatrix(step: string, matrix: MatrixSpec | undefined, limit: number): Item[] {
  if (!matrix) return [{ id: '', values: {} }];
  const path: DocPath = ['steps', step, 'matrix'];
  const { include, exclude, ...rows } = matrix as MatrixSpec & Record<string, unknown[]>;
  const keys = Object.keys(rows).sort();
  let total = keys.length ? 1 : 0;
  for (const k of keys) {
    const list = rows[k] as unknown[];
    if (!Array.isArray(list) || list.length === 0) throw new PlanError(`matrix row "${k}" of step "${step}" is empty`, [...path, k]);
    total *= list.length;
  }
  total += include?.length ?? 0;
  if (total > limit) {
    throw new PlanError(`matrix of step "${step}" expands to ${total} items, over the limit of ${limit} (matrix_limit)`, path);
  }
  const items: Item[] = [];
  const seen = new Set<string>();
  const push = (values: Record<string, unknown>) => {
    const id = itemId(values);
    if (seen.has(id)) return;
    seen.add(id);
    items.push({ id, values });
  };
  if (keys.length) {
    const idx = new Array(keys.length).fill(0);
    for (;;) {
      const values: Record<string, unknown> = {};
      keys.forEach((k, i) => (values[k] = (rows[k] as unknown[])[idx[i]]));
      if (!(exclude ?? []).some((ex) => matches(values, ex))) push(values);
      let i = keys.length - 1;
      while (i >= 0 && ++idx[i] === (rows[keys[i]] as unknown[]).length) idx[i--] = 0;
      if (i < 0) break;
    }
  }
  for (const inc of include ?? []) push({ ...inc });
  if (items.length === 0) throw new PlanError(`matrix of step "${step}" has no items after include/exclude`, path);
  return items;
}

const PLACEHOLDER = /\$\{(profile|item|vars\.[A-Za-z0-9_]+|matrix\.([A-Za-z0-9_]+)(?:\.([A-Za-z0-9_]+))?)\}/g;

const NO_ITEM: Item = { id: '', values: {} };
const WHOLE_PLACEHOLDER = new RegExp(`^${PLACEHOLDER.source}$`);

/** Resolves ${profile}, ${item}, ${matrix.key} and ${matrix.key.field} in string params. */
function interpolate(value: unknown, profile: string, item: Item, step: string, vars: Record<string, unknown> = {}): unknown {
  if (typeof value === 'string') {
    if (!value.includes('${')) return value;
    const lookup = (all: string, key?: string, field?: string): unknown => {
      if (all === 'profile') return profile;
      if (all.startsWith('vars.')) {
        const name = all.slice(5);
        if (!(name in vars)) throw new PlanError(`step "${step}": \${${all}} names no entry of vars`, ['steps', step]);
        return vars[name];
      }
      if (all === 'item') return item.id;
      if (key === undefined || !(key in item.values)) {
        throw new PlanError(`step "${step}": \${${all}} names no matrix key of this step`, ['steps', step, 'params']);
      }
      const v = item.values[key];
      if (field === undefined) return v;
      if (v === null || typeof v !== 'object' || !(field in (v as object))) {
        throw new PlanError(`step "${step}": matrix value "${valueId(v)}" of "${key}" has no field "${field}"`, ['steps', step, 'matrix', key]);
      }
      return (v as Record<string, unknown>)[field];
    };
    // A string that is exactly one placeholder keeps the value's type (numbers, objects).
    const whole = WHOLE_PLACEHOLDER.exec(value);
    if (whole) return lookup(whole[1], whole[2], whole[3]);
    return value.replace(PLACEHOLDER, (_m, all: string, key?: string, field?: string) => {
      const v = lookup(all, key, field);
      return typeof v === 'object' && v !== null ? valueId(v) : String(v);
    });
  }
  if (Array.isArray(value)) return value.map((v) => interpolate(v, profile, item, step, vars));
  if (value !== null && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, interpolate(v, profile, item, step, vars)]));
  }
  return value;
}

function needsOf(spec: StepSpec): { step: string; where?: Record<string, unknown> }[] {
  return (spec.needs ?? []).map((n) => (typeof n === 'string' ? { step: n } : n));
}

/** Step-level cycle check; the error names the cycle's path. */
export function checkCycles(dag: DagDocument): void {
  const state = new Map<string, 'visiting' | 'done'>();
  const stack: string[] = [];
  const visit = (name: string) => {
    if (state.get(name) === 'done') return;
    if (state.get(name) === 'visiting') {
      const cycle = [...stack.slice(stack.indexOf(name)), name];
      throw new PlanError(`cycle in needs: ${cycle.join(' → ')}`, ['steps', name, 'needs']);
    }
    state.set(name, 'visiting');
    stack.push(name);
    needsOf(dag.steps[name]).forEach((n, i) => {
      if (!(n.step in dag.steps)) throw new PlanError(`step "${name}" needs unknown step "${n.step}"`, ['steps', name, 'needs', i]);
      visit(n.step);
    });
    stack.pop();
    state.set(name, 'done');
  };
  for (const name of Object.keys(dag.steps)) visit(name);
}

export function plan(req: PlanRequest): Plan {
  const { dag, versions } = req;
  const profile = resolveProfileName(dag, req.profile);
  checkCycles(dag);
  const steps = effectiveSteps(dag, profile, req.overrides ?? {}, req.activityResources ?? {});
  const vars: Record<string, unknown> = { ...(dag.vars ?? {}), ...(dag.profiles?.[profile]?.vars ?? {}) };
  const limit = dag.matrix_limit ?? DEFAULT_MATRIX_LIMIT;

  // Which steps (and optionally which items) were asked for.
  const active = Object.keys(dag.steps).filter((s) => !steps.get(s)!.skip);
  const targets = req.targets && req.targets.length > 0 && !req.targets.includes('all') ? req.targets : active;
  const wantedItems = new Map<string, Set<string> | 'all'>();
  for (const t of targets) {
    const slash = t.indexOf('/');
    const step = slash < 0 ? t : t.slice(0, slash);
    if (!(step in dag.steps)) throw new PlanError(`unknown target "${t}" (no such step)`, ['steps']);
    if (steps.get(step)!.skip) throw new PlanError(`target "${t}" is skipped in profile "${profile}"`, ['profiles', profile, 'steps', step]);
    if (slash < 0) wantedItems.set(step, 'all');
    else if (wantedItems.get(step) !== 'all') {
      const set = (wantedItems.get(step) as Set<string> | undefined) ?? new Set<string>();
      set.add(t.slice(slash + 1));
      wantedItems.set(step, set);
    }
  }

  // Expand every step in dependency order and compute keys.
  const order: string[] = [];
  const done = new Set<string>();
  const visit = (name: string) => {
    if (done.has(name)) return;
    done.add(name);
    for (const n of needsOf(dag.steps[name])) if (!steps.get(n.step)!.skip) visit(n.step);
    order.push(name);
  };
  for (const name of active) visit(name);

  const nodesByStep = new Map<string, PlanNode[]>();
  for (const name of order) {
    const eff = steps.get(name)!;
    const version = versions[eff.spec.uses];
    if (version === undefined) throw new PlanError(`step "${name}" uses unknown activity "${eff.spec.uses}"`, ['steps', name, 'uses']);
    const items = expandMatrix(name, eff.matrix, limit);
    const needs = needsOf(eff.spec)
      .filter((n) => !steps.get(n.step)!.skip)
      .map((n) => (n.where ? { ...n, where: interpolate(n.where, profile, NO_ITEM, name, vars) as Record<string, unknown> } : n));
    // Index each upstream by the values of the matrix keys it shares with this step.
    const upstreamIndex = needs.map((n, ni) => {
      const ups = nodesByStep.get(n.step)!;
      const upKeys = new Set(ups.length ? Object.keys(ups[0].matrix) : []);
      const myKeys = items.length ? Object.keys(items[0].values) : [];
      const shared = myKeys.filter((k) => upKeys.has(k) && !(n.where && k in n.where)).sort();
      const index = new Map<string, PlanNode[]>();
      for (const u of ups) {
        if (n.where && !matches(u.matrix, n.where)) continue;
        const sig = shared.map((k) => valueId(u.matrix[k])).join('\u0000');
        const list = index.get(sig);
        if (list) list.push(u);
        else index.set(sig, [u]);
      }
      return { need: n, ni, shared, index };
    });
    const nodes: PlanNode[] = [];
    for (const item of items) {
      const inputKeys: string[] = [];
      const needIds: string[] = [];
      for (const { need, ni, shared, index } of upstreamIndex) {
        const sig = shared.map((k) => valueId(item.values[k])).join('\u0000');
        const ups = index.get(sig) ?? [];
        if (ups.length === 0) {
          throw new PlanError(
            `step "${name}" item "${item.id || name}" needs "${need.step}" but no item of it matches` +
              (shared.length ? ` (${shared.map((k) => `${k}=${valueId(item.values[k])}`).join(', ')})` : '') +
              (need.where ? ` where ${JSON.stringify(need.where)}` : ''),
            ['steps', name, 'needs', ni],
          );
        }
        for (const u of ups) {
          needIds.push(u.id);
          inputKeys.push(`${u.step}:${u.key}`);
        }
      }
      const params = interpolate(eff.params, profile, item, name, vars) as Record<string, unknown>;
      // Same text as canonicalJson({uses, version, params, inputs}) (keys in sorted order), built
      // without the intermediate object: this line runs once per node of 100k-item sweeps.
      const key = sha256Hex(`{"inputs":${canonicalJson(inputKeys)},"params":${canonicalJson(params)},"uses":${JSON.stringify(eff.spec.uses)},"version":${JSON.stringify(version)}}`);
      nodes.push({
        id: item.id ? `${name}/${item.id}` : name,
        step: name,
        item: item.id,
        matrix: item.values,
        uses: eff.spec.uses,
        version,
        params,
        needs: needIds,
        key,
        resources: eff.resources,
        retries: eff.retries,
        cache: eff.spec.cache ?? true,
      });
    }
    nodesByStep.set(name, nodes);
  }

  // Keep the targets and everything upstream of them.
  const byId = new Map<string, PlanNode>();
  for (const list of nodesByStep.values()) for (const n of list) byId.set(n.id, n);
  const keep = new Set<string>();
  const mark = (id: string) => {
    if (keep.has(id)) return;
    keep.add(id);
    for (const up of byId.get(id)!.needs) mark(up);
  };
  for (const [step, want] of wantedItems) {
    const list = nodesByStep.get(step)!;
    if (want === 'all') list.forEach((n) => mark(n.id));
    else {
      for (const item of want) {
        const node = list.find((n) => n.item === item);
        if (!node) throw new PlanError(`unknown target "${step}/${item}" (items: ${list.map((n) => n.item).slice(0, 5).join(', ')}...)`, ['steps', step]);
        mark(node.id);
      }
    }
  }
  const nodes: PlanNode[] = [];
  for (const name of order) for (const n of nodesByStep.get(name)!) if (keep.has(n.id)) nodes.push(n);
  const planHash = sha256Hex(canonicalJson({ profile, nodes: nodes.map((n) => [n.id, n.key]) }));
  return { profile, targets, nodes, planHash };
}
