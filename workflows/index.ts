/** Workflow entry points registered on every worker (bundled into Temporal's deterministic sandbox). */
export { pipelineWorkflow } from './pipeline';
export { stepWorkflow } from './step';
