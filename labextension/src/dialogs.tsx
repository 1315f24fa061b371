/**
 * Dialogs: "Run with parameters" (form generated from the notebooks' parameters cells), "Repair run" (the
 * dry-run plan and parameter overrides) and "Task settings" (a notebook's metadata.orchestrate).
 * They use JupyterLab's Dialog with a React body whose getValue() returns what the user entered.
 */
import React, { useState } from 'react';
import { Dialog, ReactWidget, showDialog } from '@jupyterlab/apputils';

import {
  JobDocument,
  ParameterFieldDocument,
  RepairPlanDocument,
  RepairRequest,
  RunDocument,
  TaskDocument
} from './api';

/** A field of the run form: the server types each job and notebook parameter (`JobDocument.parameter_fields`). */
export type IParameterField = ParameterFieldDocument;

/** The run form's fields, as the server gives them (an invalid job has none). */
export function parameterFields(job: JobDocument): IParameterField[] {
  return job.parameter_fields ?? [];
}

/** Parse a form value like the CLI's `-p`: strings stay strings for str parameters, else JSON if it parses. */
export function parseValue(raw: string, type: string | null): unknown {
  if (type === 'str') {
    return raw;
  }
  const literals: Record<string, unknown> = { True: true, False: false, None: null };
  if (raw in literals) {
    return literals[raw];
  }
  try {
    return JSON.parse(raw);
  } catch {
    return raw;
  }
}

class FormBody<T> extends ReactWidget {
  constructor(
    private renderBody: (set: (value: T) => void) => JSX.Element,
    private value: T
  ) {
    super();
  }
  render(): JSX.Element {
    return this.renderBody(v => (this.value = v));
  }
  getValue(): T {
    return this.value;
  }
}

function ParametersForm(props: {
  fields: IParameterField[];
  onChange: (values: Record<string, string>) => void;
}): JSX.Element {
  const [values, setValues] = useState<Record<string, string>>({});
  if (props.fields.length === 0) {
    return <div className="jo-muted">This job has no parameters.</div>;
  }
  return (
    <div className="jo-form" data-testid="jo-parameters-form">
      {props.fields.map(field => (
        <label key={field.name}>
          <span>
            {field.name}{' '}
            <span className="jo-muted">
              ({field.type ?? 'any'}; {field.tasks.join(', ')})
            </span>
          </span>
          <input
            name={field.name}
            placeholder={field.default}
            value={values[field.name] ?? ''}
            onChange={event => {
              const next = { ...values, [field.name]: event.target.value };
              setValues(next);
              props.onChange(next);
            }}
          />
        </label>
      ))}
      <span className="jo-muted">Leave a field empty to keep its default.</span>
    </div>
  );
}

function overrides(fields: IParameterField[], values: Record<string, string>): Record<string, unknown> {
  const result: Record<string, unknown> = {};
  for (const field of fields) {
    const raw = values[field.name];
    if (raw !== undefined && raw !== '') {
      result[field.name] = parseValue(raw, field.type);
    }
  }
  return result;
}

/** Ask for parameter overrides. Resolves to null when cancelled. */
export async function runDialog(job: JobDocument): Promise<Record<string, unknown> | null> {
  const fields = parameterFields(job);
  const body = new FormBody<Record<string, string>>(set => <ParametersForm fields={fields} onChange={set} />, {});
  const result = await showDialog({
    title: `Run ${job.name}`,
    body,
    buttons: [Dialog.cancelButton(), Dialog.okButton({ label: 'Run' })]
  });
  return result.button.accept ? overrides(fields, result.value ?? {}) : null;
}

/** Show the repair plan (dry run) and ask for parameter overrides. Resolves to null when cancelled. */
export async function repairDialog(
  run: RunDocument,
  plan: RepairPlanDocument,
  job: JobDocument | undefined
): Promise<RepairRequest | null> {
  const fields = job ? parameterFields(job) : [];
  const body = new FormBody<Record<string, string>>(
    set => (
      <div className="jo-form" data-testid="jo-repair-plan">
        <div>
          <b>Re-executes:</b> <span data-testid="jo-repair-rerun">{plan.task_keys.join(', ')}</span>
        </div>
        <div>
          <b>Reused:</b> <span data-testid="jo-repair-reused">{plan.reused_task_keys.join(', ') || 'nothing'}</span>
        </div>
        <ParametersForm fields={fields} onChange={set} />
      </div>
    ),
    {}
  );
  const result = await showDialog({
    title: `Repair run ${run.run_id}`,
    body,
    buttons: [Dialog.cancelButton(), Dialog.okButton({ label: 'Repair' })]
  });
  if (!result.button.accept) {
    return null;
  }
  return { task_keys: plan.task_keys, parameters: overrides(fields, result.value ?? {}) };
}

export interface ITaskSettings {
  depends_on: string[];
  run_if: string;
  kernel_name: string;
  max_retries: string;
  timeout_seconds: string;
}

const RUN_IF = ['all_success', 'at_least_one_success', 'none_failed', 'all_done', 'at_least_one_failed', 'all_failed'];

/** The form's values for a task's current settings. */
export function initialSettings(task: TaskDocument): ITaskSettings {
  return {
    depends_on: task.depends_on,
    run_if: task.run_if,
    kernel_name: task.environment.kernel_name ?? '',
    max_retries: String(task.max_retries),
    timeout_seconds: task.timeout_seconds === null ? '' : String(task.timeout_seconds)
  };
}

function TaskSettingsForm(props: {
  task: TaskDocument;
  initial: ITaskSettings | null;
  others: string[];
  kernels: string[];
  errors: Record<string, string>;
  onChange: (value: ITaskSettings) => void;
}): JSX.Element {
  const { task } = props;
  // shown again after a refused Save: keep what the user entered
  const [value, setValue] = useState<ITaskSettings>(props.initial ?? initialSettings(task));
  const update = (patch: Partial<ITaskSettings>) => {
    const next = { ...value, ...patch };
    setValue(next);
    props.onChange(next);
  };
  return (
    <div className="jo-form" data-testid="jo-task-settings">
      <label>
        depends_on
        <select
          multiple
          value={value.depends_on}
          onChange={event => update({ depends_on: Array.from(event.target.selectedOptions).map(o => o.value) })}
        >
          {props.others.map(key => (
            <option key={key} value={key}>
              {key}
            </option>
          ))}
        </select>
        {props.errors.depends_on && <span className="jo-field-error">{props.errors.depends_on}</span>}
      </label>
      <label>
        run_if
        <select value={value.run_if} onChange={event => update({ run_if: event.target.value })}>
          {RUN_IF.map(r => (
            <option key={r}>{r}</option>
          ))}
        </select>
      </label>
      <label>
        kernel
        <select value={value.kernel_name} onChange={event => update({ kernel_name: event.target.value })}>
          <option value="">(the notebook's kernel)</option>
          {props.kernels.map(k => (
            <option key={k}>{k}</option>
          ))}
        </select>
        {props.errors.environment && <span className="jo-field-error">{props.errors.environment}</span>}
      </label>
      <label>
        max_retries
        <input
          type="number"
          min={0}
          value={value.max_retries}
          onChange={event => update({ max_retries: event.target.value })}
        />
        {props.errors.max_retries && <span className="jo-field-error">{props.errors.max_retries}</span>}
      </label>
      <label>
        timeout_seconds
        <input
          type="number"
          min={1}
          value={value.timeout_seconds}
          placeholder="none"
          onChange={event => update({ timeout_seconds: event.target.value })}
        />
        {props.errors.timeout_seconds && <span className="jo-field-error">{props.errors.timeout_seconds}</span>}
      </label>
    </div>
  );
}

/** The changes a task settings form asks for, as the PUT body. */
export function settingsChanges(task: TaskDocument, value: ITaskSettings): Record<string, unknown> {
  return {
    depends_on: value.depends_on,
    run_if: value.run_if,
    environment: value.kernel_name
      ? { ...task.environment, kernel_name: value.kernel_name }
      : { ...task.environment, kernel_name: null },
    max_retries: value.max_retries === '' ? null : Number(value.max_retries),
    timeout_seconds: value.timeout_seconds === '' ? null : Number(value.timeout_seconds)
  };
}

/**
 * Edit a task's settings; `save` is called with the changes and may throw an error with field messages,
 * which are shown inline and the dialog stays open.
 */
export async function taskSettingsDialog(
  task: TaskDocument,
  others: string[],
  kernels: string[],
  save: (changes: Record<string, unknown>) => Promise<Record<string, string> | null>
): Promise<boolean> {
  let errors: Record<string, string> = {};
  let value: ITaskSettings | null = null;
  for (;;) {
    const current = errors;
    const body: FormBody<ITaskSettings | null> = new FormBody<ITaskSettings | null>(
      set => (
        <TaskSettingsForm
          task={task}
          initial={value}
          others={others}
          kernels={kernels}
          errors={current}
          onChange={set}
        />
      ),
      value
    );
    const result: Dialog.IResult<ITaskSettings | null> = await showDialog({
      title: `Task settings: ${task.task_key}`,
      body,
      buttons: [Dialog.cancelButton(), Dialog.okButton({ label: 'Save' })]
    });
    if (!result.button.accept) {
      return false;
    }
    value = result.value ?? value ?? initialSettings(task); // untouched: `save` decides what is a change
    const problems = await save(settingsChanges(task, value));
    if (problems === null) {
      return true;
    }
    errors = problems;
  }
}
