/**
 * Loads dag.yaml, validates it, and turns every problem into a DagError that names the file, line
 * and column and says what is wrong.
 */
import * as fs from 'fs';
import { LineCounter, parseDocument, isNode, type Node as YamlNode } from 'yaml';
import { z } from 'zod';
import type { ActivityRegistry } from '../activities/index';
import { activityVersions } from '../activities/index';
import { dagSchema, type DagDocument } from './dag-schema';
import { plan, PlanError, type DocPath, type Overrides } from './planner';
import type { Plan } from './plan-types';

export class DagError extends Error {
  constructor(
    readonly file: string,
    readonly line: number | undefined,
    readonly column: number | undefined,
    readonly detail: string,
  ) {
    super(`${file}${line !== undefined ? `:${line}:${column}` : ''}: ${detail}`);
    this.name = 'DagError';
  }
}

export interface LoadedDag {
  file: string;
  doc: DagDocument;
  /** 1-based line/column of the deepest existing node on `path`. */
  locate(path: DocPath): { line: number; column: number } | undefined;
}

export function parseDag(text: string, file: string): LoadedDag {
  const lineCounter = new LineCounter();
  const document = parseDocument(text, { lineCounter, uniqueKeys: true, prettyErrors: false });
  if (document.errors.length > 0) {
    const e = document.errors[0];
    const pos = lineCounter.linePos(e.pos[0]);
    throw new DagError(file, pos.line, pos.col, `invalid YAML: ${e.message.split('\n')[0]}`);
  }
  const locate = (path: DocPath) => {
    for (let n = path.length; n >= 0; n--) {
      const node = document.getIn(path.slice(0, n), true);
      if (isNode(node) && (node as YamlNode).range) {
        const { line, col } = lineCounter.linePos((node as YamlNode).range![0]);
        // For a mapping value, point at its key rather than the value.
        return { line, column: col };
      }
    }
    return undefined;
  };
  const raw = document.toJS();
  const parsed = dagSchema.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const path = issue.path.map((p) => (typeof p === 'symbol' ? String(p) : p)) as DocPath;
    // Point at the offending key itself when there is one.
    const where = locate(issue.code === 'unrecognized_keys' ? [...path, (issue as { keys: string[] }).keys[0]] : path);
    const what = issue.code === 'unrecognized_keys' ? `unknown key(s) ${(issue as { keys: string[] }).keys.join(', ')}` : issue.message;
    throw new DagError(file, where?.line, where?.column, `${path.join('.') || '(document)'}: ${what}`);
  }
  return { file, doc: parsed.data, locate };
}

export function loadDag(file: string): LoadedDag {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    throw new DagError(file, undefined, undefined, `cannot read DAG file: ${(err as Error).message}`);
  }
  return parseDag(text, file);
}

export interface PlanOptions {
  profile?: string;
  overrides?: Overrides;
  targets?: string[];
}

/** Plans the DAG and type-checks every node's params against its activity's schema. */
export function planDag(loaded: LoadedDag, registry: ActivityRegistry, opts: PlanOptions = {}): Plan {
  let result: Plan;
  try {
    const activityResources = Object.fromEntries([...registry].map(([name, a]) => [name, a.resources ?? {}]));
    result = plan({ dag: loaded.doc, versions: activityVersions(registry), activityResources, ...opts });
  } catch (err) {
    if (err instanceof PlanError) {
      const where = loaded.locate(err.path);
      throw new DagError(loaded.file, where?.line, where?.column, err.message);
    }
    throw err;
  }
  // A sweep's items differ in a few params only: after one full check per step, check just the values
  // that differ from the step's first item (each distinct value once). Full checks where the schema
  // has cross-field refinements or an item's keys differ.
  const firstOfStep = new Map<string, { params: Record<string, unknown>; json: Map<string, string> }>();
  const checkedValues = new Set<string>();
  const fail = (node: Plan['nodes'][number], issue: z.core.$ZodIssue, keyHint?: string): never => {
    const key = keyHint ?? (issue.code === 'unrecognized_keys' ? (issue as { keys: string[] }).keys[0] : String(issue.path[0] ?? ''));
    const origin = paramOrigin(loaded.doc, node.step, result.profile, key);
    const where = loaded.locate(origin);
    const path = keyHint ? [keyHint, ...issue.path].join('.') : issue.path.join('.');
    const what =
      issue.code === 'unrecognized_keys'
        ? `unknown param "${key}" for activity "${node.uses}"`
        : `param "${path}" of activity "${node.uses}": ${issue.message}`;
    throw new DagError(loaded.file, where?.line, where?.column, `step "${node.step}"${node.item ? ` item "${node.item}"` : ''}: ${what}`);
  };
  for (const node of result.nodes) {
    const schema = registry.get(node.uses)!.params;
    const shape = objectShape(schema);
    const first = firstOfStep.get(node.step);
    const keys = Object.keys(node.params);
    if (!first || !shape || keys.length !== first.json.size || keys.some((k) => !first.json.has(k))) {
      const parsed = schema.safeParse(node.params);
      if (!parsed.success) fail(node, parsed.error.issues[0]);
      if (!first) firstOfStep.set(node.step, { params: node.params, json: new Map(keys.map((k) => [k, JSON.stringify(node.params[k])])) });
      continue;
    }
    for (const k of keys) {
      if (node.params[k] === first.params[k]) continue;
      const json = JSON.stringify(node.params[k]);
      if (json === first.json.get(k)) continue;
      const sig = `${node.uses}\u0000${k}\u0000${json}`;
      if (checkedValues.has(sig)) continue;
      checkedValues.add(sig);
      const parsed = shape[k].safeParse(node.params[k]);
      if (!parsed.success) fail(node, parsed.error.issues[0], k);
    }
  }
  return result;
}

/** The field schemas of a plain object schema without cross-field refinements, else undefined. */
function objectShape(schema: z.ZodTypeAny): Record<string, z.ZodTypeAny> | undefined {
  if (!(schema instanceof z.ZodObject)) return undefined;
  const checks = (schema as unknown as { _zod: { def: { checks?: unknown[] } } })._zod.def.checks;
  if (checks && checks.length > 0) return undefined;
  return schema.shape as Record<string, z.ZodTypeAny>;
}

/** Where a param's value came from, for error locations: profile beats step, matrix beats both. */
function paramOrigin(doc: DagDocument, step: string, profile: string, key: string): DocPath {
  const prof = doc.profiles?.[profile]?.steps?.[step];
  if (prof?.matrix && key in prof.matrix) return ['profiles', profile, 'steps', step, 'matrix', key];
  if (doc.steps[step].matrix && key in doc.steps[step].matrix!) return ['steps', step, 'matrix', key];
  if (prof?.params && key in prof.params) return ['profiles', profile, 'steps', step, 'params', key];
  if (doc.steps[step].params && key in doc.steps[step].params!) return ['steps', step, 'params', key];
  return ['steps', step];
}

/** Parses `--set step.param=value` strings; values are YAML scalars/flow collections. */
export function parseOverrides(sets: string[]): Overrides {
  const out: Overrides = {};
  for (const s of sets) {
    const m = /^([A-Za-z0-9_-]+)\.([A-Za-z0-9_.-]+)=(.*)$/s.exec(s);
    if (!m) throw new DagError('--set', undefined, undefined, `expected step.param=value, got "${s}"`);
    const [, step, param, rawValue] = m;
    let value: unknown;
    try {
      value = parseDocument(rawValue).toJS();
    } catch {
      value = rawValue;
    }
    (out[step] ??= {})[param] = value === null && rawValue !== 'null' && rawValue !== '~' ? rawValue : value;
  }
  return out;
}
