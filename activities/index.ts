/**
 * The activity registry: every activity a dag.yaml may `use`. Both engines and the Temporal worker
 * import this one list. Add a new activity module here (one line) when it lands.
 */
import type { AnyActivity } from '../pipelines/activity';
import { builtinActivities } from './builtin';
import { dataActivities } from './data';
import { evalActivities } from './eval';
import { reportActivities } from './report';
import { importActivities } from './import';
import { trainActivities } from './train';
import { controlActivities } from './control';
import { timingActivities } from './timing';

export const ALL_ACTIVITIES: AnyActivity[] = [
  ...builtinActivities,
  ...dataActivities,
  ...evalActivities,
  ...reportActivities,
  ...importActivities,
  ...trainActivities,
  ...controlActivities,
  ...timingActivities,
];

export type ActivityRegistry = Map<string, AnyActivity>;

export function createRegistry(list: AnyActivity[] = ALL_ACTIVITIES): ActivityRegistry {
  const registry: ActivityRegistry = new Map();
  for (const activity of list) {
    if (registry.has(activity.name)) throw new Error(`activity "${activity.name}" is registered twice`);
    registry.set(activity.name, activity);
  }
  return registry;
}

/** name → version: the planner needs only this (it must not import activity code). */
export function activityVersions(registry: ActivityRegistry): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, a] of registry) out[name] = a.version;
  return out;
}
