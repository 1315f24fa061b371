/**
 * The notebook toolbar's "Task settings": edit an open notebook's `metadata.orchestrate` without writing
 * anything behind the user's back. The server checks the change (`POST jobs/{job}/tasks/{key}/validate`,
 * nothing written) and answers the resulting settings; they are set through the notebook's model, so the
 * user's unsaved edits and the document's dirty state are kept: a clean notebook is saved with only this
 * change, a dirty one stays dirty. Cancel changes nothing, and a notebook that is not yet a task is not
 * tagged until Save.
 */
import { showErrorMessage } from '@jupyterlab/apputils';
import type { NotebookPanel } from '@jupyterlab/notebook';

import { api, ErrorProblem, JobDocument, OrchestrateApiError, TaskDocument, TaskSettingsDocument } from './api';
import { taskSettingsDialog } from './dialogs';

export const METADATA_KEY = 'orchestrate';

/** Where a notebook sits for the task settings route: its job folder, its path in it, its task key. */
export interface ITaskLocation {
  /** The job folder relative to the server root (the job id). */
  jobId: string;
  /** The notebook relative to the job folder. */
  notebook: string;
  taskKey: string;
}

type Metadata = Record<string, unknown>;

/**
 * Where the notebook `path` (relative to the server root) belongs: the job one of whose tasks it is (from
 * `jobs`, so a notebook in a job's subfolder is found), else its own folder, as a task keyed by its
 * `metadata.orchestrate.task_key` or its file name's stem. Null for a notebook at the server root (a job is
 * a folder).
 */
export function taskLocation(path: string, jobs: JobDocument[], metadata: Metadata | null): ITaskLocation | null {
  for (const job of jobs) {
    const task = job.tasks?.find(t => t.notebook_path === path);
    if (task && path.startsWith(`${job.job_id}/`)) {
      return { jobId: job.job_id, notebook: path.slice(job.job_id.length + 1), taskKey: task.task_key };
    }
  }
  const slash = path.lastIndexOf('/');
  if (slash <= 0) {
    return null;
  }
  const name = path.slice(slash + 1);
  const claimed = metadata?.task_key;
  const stem = name.replace(/\.ipynb$/, '');
  return { jobId: path.slice(0, slash), notebook: name, taskKey: typeof claimed === 'string' ? claimed : stem };
}

function sameJson(a: unknown, b: unknown): boolean {
  return JSON.stringify(a ?? null) === JSON.stringify(b ?? null);
}

/**
 * The settings the user changed, as the validate/PUT body: `changes` (the dialog's full form) without the
 * fields equal to the task's current values, so Save does not copy defaults into the notebook. The kernel
 * goes into the notebook's own `environment` (not the merged one, which holds job.yaml's settings).
 */
export function changedSettings(
  task: TaskDocument,
  changes: Record<string, unknown>,
  metadata: Metadata | null
): Record<string, unknown> {
  const result: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(changes)) {
    if (key === 'environment') {
      const kernel = (value as { kernel_name?: string | null } | null)?.kernel_name ?? null;
      if (kernel === (task.environment.kernel_name ?? null)) {
        continue;
      }
      const own = { ...((metadata?.environment as Metadata | undefined) ?? {}) };
      if (kernel === null) {
        delete own.kernel_name;
      } else {
        own.kernel_name = kernel;
      }
      result.environment = Object.keys(own).length > 0 ? own : null;
      continue;
    }
    const current = (task as unknown as Record<string, unknown>)[key];
    if (!sameJson(value, current)) {
      result[key] = value;
    }
  }
  return result;
}

/** The form fields the dialog shows an error under. */
const FORM_FIELDS = ['depends_on', 'environment', 'max_retries', 'timeout_seconds'];

/**
 * The dialog's inline errors for an error answer: each problem under the form field its `field` names
 * (`metadata.orchestrate.timeout_seconds` → `timeout_seconds`); the others (a cycle, an unknown task)
 * under `depends_on`, the field that causes them.
 */
export function fieldErrors(problems: ErrorProblem[], message: string): Record<string, string> {
  const errors: Record<string, string> = {};
  for (const p of problems) {
    const field = p.field.split('.').find(f => FORM_FIELDS.includes(f)) ?? 'depends_on';
    errors[field] = errors[field] ? `${errors[field]}; ${p.message}` : p.message;
  }
  if (Object.keys(errors).length === 0) {
    errors.depends_on = message;
  }
  return errors;
}

function currentMetadata(panel: NotebookPanel): Metadata | null {
  const value = panel.context.model.getMetadata(METADATA_KEY);
  return value && typeof value === 'object' ? (JSON.parse(JSON.stringify(value)) as Metadata) : null;
}

/**
 * Set the checked settings in the notebook's model: a clean notebook is then saved (only this change is
 * unsaved), a dirty one is left dirty for the user to save with their edits.
 */
export async function applySettings(panel: NotebookPanel, settings: Metadata): Promise<boolean> {
  const model = panel.context.model;
  const before = model.getMetadata(METADATA_KEY);
  if (before !== undefined && sameJson(before, settings)) {
    return false;
  }
  const wasDirty = model.dirty;
  model.setMetadata(METADATA_KEY, settings);
  if (!wasDirty) {
    await panel.context.save();
  }
  return true;
}

/**
 * The Task settings command for the open notebook `panel`: check its current settings (nothing written),
 * show the dialog, and on Save check the change and set it through the model (see `applySettings`).
 *
 * @param kernels the installed kernelspec names, for the kernel field
 * @param saved called after a change was set (e.g. to refresh the sidebar)
 */
export async function editTaskSettings(
  panel: NotebookPanel,
  kernels: string[],
  saved: () => void | Promise<void>
): Promise<void> {
  const path = panel.context.path;
  if (panel.context.model.readOnly) {
    await showErrorMessage(
      'Task settings',
      `${path} is read-only (an executed notebook is the record of a run): open the task's notebook to change its settings.`
    );
    return;
  }
  const location = taskLocation(path, await api.listJobs(), currentMetadata(panel));
  if (location === null) {
    await showErrorMessage(
      'Task settings',
      `${path} is at the server root: a job is a folder of notebooks; move the notebook into one.`
    );
    return;
  }
  const check = (changes: Record<string, unknown>): Promise<TaskSettingsDocument> =>
    api.checkTaskSettings(location.jobId, location.taskKey, {
      notebook: location.notebook,
      metadata: currentMetadata(panel),
      changes
    });
  let opened: TaskSettingsDocument;
  try {
    opened = await check({});
  } catch (error) {
    if (error instanceof OrchestrateApiError) {
      const details = error.problems.map(p => `${p.field ? `${p.field}: ` : ''}${p.message}`).join('\n');
      await showErrorMessage('Task settings', details ? `${error.message}\n${details}` : error.message);
      return;
    }
    throw error;
  }
  const task = opened.job.tasks?.find(t => t.task_key === opened.task_key);
  if (!task) {
    await showErrorMessage(
      'Task settings',
      `The job ${location.jobId} has problems:\n${opened.job.problems.map(p => p.text).join('\n')}`
    );
    return;
  }
  const others = (opened.job.tasks ?? []).map(t => t.task_key).filter(k => k !== task.task_key);
  await taskSettingsDialog(task, others, kernels, async changes => {
    try {
      const checked = await check(changedSettings(task, changes, currentMetadata(panel)));
      if (await applySettings(panel, checked.metadata)) {
        await saved();
      }
      return null;
    } catch (error) {
      if (error instanceof OrchestrateApiError) {
        return fieldErrors(error.problems, error.message);
      }
      throw error;
    }
  });
}
