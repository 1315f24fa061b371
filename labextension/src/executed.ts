/**
 * Opening notebooks from the sidebar. A task's source notebook opens as any notebook; an executed attempt
 * notebook (runs/<id>/<task>/attempt-N.ipynb in the state home) is a record of what ran, so it opens
 * read-only with no kernel started (JupyterLab's kernel preference `shouldStart: false`, a read-only model
 * and read-only cells), titled `<job> #<run> <task> attempt <n>`, scrolled so the failing cell's error
 * output is in view. Running it again in a live kernel is a separate action.
 *
 * This module holds the pure parts (unit-tested); ./openExecuted opens the notebook with JupyterLab.
 */
/** What an executed notebook is the record of (for its title). */
export interface IExecutedNotebook {
  /** The executed notebook, relative to the server root. */
  path: string;
  /** The cell to show (index in the executed notebook), e.g. the failing one; null: the top. */
  cellIndex?: number | null;
  job: string;
  runId: number;
  taskKey: string;
  attemptNumber: number;
  repairNumber?: number;
}

/** The tab title of an executed notebook: `<job> #<run> <task> attempt <n>` (repairs: `(repair <r>)`). */
export function executedTitle(executed: IExecutedNotebook): string {
  const repair = executed.repairNumber ? ` (repair ${executed.repairNumber})` : '';
  return `${executed.job} #${executed.runId} ${executed.taskKey} attempt ${executed.attemptNumber}${repair}`;
}

/** No kernel for a record of a run: none is started, and none is started later without the user asking. */
export const NO_KERNEL = { shouldStart: false, canStart: false, autoStartDefault: false } as const;

/** A cell index within a notebook of `count` cells (negative or too large indices are clamped). */
export function clampCell(index: number, count: number): number {
  return Math.max(0, Math.min(index, count - 1));
}

/** The index of the first `error` output among `outputs` (nbformat output dicts), or -1. */
export function errorOutputIndex(outputs: ReadonlyArray<{ output_type?: string }>): number {
  return outputs.findIndex(o => o.output_type === 'error');
}
