/**
 * The dag.yaml schema. Pure data types + zod validation of the document's shape; semantic checks
 * (activities exist, params type-check, needs resolve, no cycles) happen in dag-validate.ts.
 */
import { z } from 'zod';

const scalar = z.union([z.string(), z.number(), z.boolean()]);
/** A matrix value: a scalar, or an object with an `id` (used in the item id). */
const matrixValue = z.union([scalar, z.object({ id: z.union([z.string(), z.number()]) }).passthrough()]);

export const matrixSchema = z
  .object({
    include: z.array(z.record(z.string(), z.unknown())).optional(),
    exclude: z.array(z.record(z.string(), z.unknown())).optional(),
  })
  .catchall(z.array(matrixValue));

export const resourcesSchema = z
  .object({
    cpus: z.number().int().min(0).optional(),
    gpus: z.number().int().min(0).optional(),
    memoryMb: z.number().int().min(0).optional(),
  })
  .strict();

/** `needs: [a, b]` or `needs: [{step: a, where: {model: backpack}}]` (filter the upstream items). */
export const needSchema = z.union([
  z.string(),
  z.object({ step: z.string(), where: z.record(z.string(), scalar).optional() }).strict(),
]);

export const stepSchema = z
  .object({
    uses: z.string(),
    description: z.string().optional(),
    needs: z.array(needSchema).optional(),
    params: z.record(z.string(), z.unknown()).optional(),
    matrix: matrixSchema.optional(),
    resources: resourcesSchema.optional(),
    retries: z.number().int().min(0).optional(),
    cache: z.boolean().optional(),
  })
  .strict();

/** A profile overrides params and matrices of existing steps; it cannot add steps. */
export const profileStepSchema = z
  .object({
    /** Leave the step out of this profile; `needs` on it are dropped (e.g. no BPE training on OpenWebText). */
    skip: z.boolean().optional(),
    params: z.record(z.string(), z.unknown()).optional(),
    matrix: matrixSchema.optional(),
    resources: resourcesSchema.optional(),
    retries: z.number().int().min(0).optional(),
  })
  .strict();

export const profileSchema = z
  .object({
    description: z.string().optional(),
    /** Overrides of the DAG's `vars`. */
    vars: z.record(z.string(), scalar).optional(),
    steps: z.record(z.string(), profileStepSchema).optional(),
  })
  .strict();

export const dagSchema = z
  .object({
    version: z.literal(1),
    description: z.string().optional(),
    default_profile: z.string().optional(),
    /** Largest number of items a single step's matrix may expand to. */
    matrix_limit: z.number().int().positive().optional(),
    /** Named values usable as ${vars.name} in params and in `needs: [{where: ...}]`; profiles override them. */
    vars: z.record(z.string(), scalar).optional(),
    steps: z.record(z.string(), stepSchema),
    profiles: z.record(z.string(), profileSchema).optional(),
  })
  .strict();

export type DagDocument = z.infer<typeof dagSchema>;
export type StepSpec = z.infer<typeof stepSchema>;
export type MatrixSpec = z.infer<typeof matrixSchema>;
export type NeedSpec = z.infer<typeof needSchema>;
export type ProfileSpec = z.infer<typeof profileSchema>;

export const DEFAULT_MATRIX_LIMIT = 200_000;
