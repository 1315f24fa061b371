/**
 * Dialogs: "Run with parameters" (form generated from the notebooks' parameters cells), "Repair run" (the
 * tasks to repair, the dry-run plan and parameter overrides) and "Task settings" (a notebook's
 * metadata.orchestrate). They use JupyterLab's Dialog with a React body whose getValue() returns what the user
 * entered. The run and repair dialogs stay open on a bad value: they check types here, then the server's
 * problems (field `parameters.<name>`) are shown at their inputs and the dialog is shown again with the input.
 */
import React, { useEffect, useRef, useState } from 'react';
import { Dialog, ReactWidget, showDialog } from '@jupyterlab/apputils';

import {
  ErrorProblem,
  JobDocument,
  OrchestrateApiError,
  ParameterFieldDocument,
  RepairPlanDocument,
  RepairRequest,
  RunDocument,
  TaskDocument
} from './api';

/** A field of the run form: the server types each job and notebook parameter (`JobDocument.parameter_fields`). */
export type IParameterField = ParameterFieldDocument;

/** Field errors by parameter name; `''` holds an error that is no one field's. */
export type IFieldErrors = Record<string, string>;

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

/**
 * Check a form value against its parameter's type as the server will (`parameters.coerce`: int, float, bool,
 * list, dict are checked; str and unknown types take any text).
 *
 * @returns null when valid, else the message shown at the field
 */
export function checkValue(raw: string, type: string | null): string | null {
  const value = parseValue(raw, type);
  const ok: Record<string, (v: unknown) => boolean> = {
    int: v => typeof v === 'number' && Number.isInteger(v) && !/[.eE]/.test(raw.trim()),
    float: v => typeof v === 'number',
    bool: v => typeof v === 'boolean',
    list: v => Array.isArray(v),
    dict: v => typeof v === 'object' && v !== null && !Array.isArray(v)
  };
  if (typeof value === 'number' && !Number.isFinite(value)) {
    // JSON has no infinity (1e999): it would be sent as null
    return `${JSON.stringify(raw)} is not a finite number`;
  }
  const check = type === null ? undefined : ok[type];
  if (check === undefined || check(value)) {
    return null;
  }
  return `${JSON.stringify(raw)} is not a valid ${type}`;
}

/** The form's first values: every field's default as text (shown as a value, not a placeholder). */
export function initialValues(
  fields: IParameterField[],
  effective: Record<string, unknown> = {}
): Record<string, string> {
  const values: Record<string, string> = {};
  for (const field of fields) {
    const value = field.tasks.includes('job') && field.name in effective ? effective[field.name] : undefined;
    values[field.name] =
      value === undefined ? field.default : typeof value === 'string' ? value : JSON.stringify(value);
  }
  return values;
}

/**
 * The client-side errors of the form's values (types), by field name; `{}` when all are valid. Values left
 * as they started (`initial`) are not checked: they are not sent.
 */
export function valueErrors(
  fields: IParameterField[],
  values: Record<string, string>,
  initial: Record<string, string> = initialValues(fields)
): IFieldErrors {
  const errors: IFieldErrors = {};
  for (const field of fields) {
    const raw = values[field.name];
    if (raw === undefined || field.source_task || raw === initial[field.name]) {
      continue;
    }
    const problem = checkValue(raw, field.type);
    if (problem) {
      errors[field.name] = problem;
    }
  }
  return errors;
}

/**
 * The overrides a form asks for: only the fields the user changed from their starting value (`initial`,
 * default: the defaults), typed like `-p`; fields fed by an upstream task value are never sent.
 */
export function overrides(
  fields: IParameterField[],
  values: Record<string, string>,
  initial: Record<string, string> = initialValues(fields)
): Record<string, unknown> {
  const result: Record<string, unknown> = {};
  for (const field of fields) {
    const raw = values[field.name];
    if (raw !== undefined && !field.source_task && raw !== initial[field.name]) {
      result[field.name] = parseValue(raw, field.type);
    }
  }
  return result;
}

/**
 * The server's problems of a refused request as field errors: `parameters.<name>` goes to that field, any
 * other problem (or a message without problems) to `''`.
 */
export function problemErrors(problems: ErrorProblem[], message: string, fields: IParameterField[]): IFieldErrors {
  const names = new Set(fields.map(f => f.name));
  const errors: IFieldErrors = {};
  for (const problem of problems) {
    const name = problem.field.startsWith('parameters.') ? problem.field.slice('parameters.'.length) : '';
    const key = names.has(name) ? name : '';
    const text = key ? problem.message : [problem.field, problem.message].filter(Boolean).join(': ');
    errors[key] = errors[key] ? `${errors[key]}\n${text}` : text;
  }
  if (Object.keys(errors).length === 0) {
    errors[''] = message;
  }
  return errors;
}

/**
 * The fields a repair offers: those used by a task that re-executes (a job parameter when one of those
 * tasks declares or references it, a notebook parameter of one of them).
 */
export function repairFields(fields: IParameterField[], rerun: string[]): IParameterField[] {
  const keys = new Set(rerun);
  return fields.filter(field => field.tasks.some(t => keys.has(t)));
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

/** The parameter inputs: prefilled values, inline errors, and fields fed by a task value read-only. */
export function ParametersForm(props: {
  fields: IParameterField[];
  values: Record<string, string>;
  errors: IFieldErrors;
  onChange: (values: Record<string, string>) => void;
  empty?: string;
}): JSX.Element {
  const [values, setValues] = useState<Record<string, string>>(props.values);
  if (props.fields.length === 0) {
    return <div className="jo-muted">{props.empty ?? 'This job has no parameters.'}</div>;
  }
  return (
    <div className="jo-form" data-testid="jo-parameters-form">
      {props.fields.map(field => {
        const error = props.errors[field.name];
        const fed = field.source_task;
        return (
          <label key={field.name} data-field={field.name}>
            <span>
              {field.name}{' '}
              <span className="jo-muted">
                ({field.type ?? 'any'}; {fed ? `from task ${fed}` : field.tasks.join(', ')})
              </span>
            </span>
            <input
              className="jp-mod-styled"
              name={field.name}
              value={fed ? `from task ${fed}` : (values[field.name] ?? '')}
              readOnly={!!fed}
              disabled={!!fed}
              title={fed ? `Set by task ${fed}'s task value when the run executes` : field.default}
              aria-invalid={error ? true : undefined}
              onChange={event => {
                const next = { ...values, [field.name]: event.target.value };
                setValues(next);
                props.onChange(next);
              }}
            />
            {error && <span className="jo-field-error">{error}</span>}
          </label>
        );
      })}
    </div>
  );
}

function GeneralError(props: { errors: IFieldErrors }): JSX.Element | null {
  const error = props.errors[''];
  return error ? (
    <div className="jo-field-error" data-testid="jo-form-error">
      {error}
    </div>
  ) : null;
}

/**
 * Ask for parameter overrides and start the run with `start`. On a bad value (checked here, or refused by
 * the server with problems) the dialog is shown again with the user's input and the errors at their fields;
 * nothing is started until every value is valid.
 *
 * @param start starts the run with the overrides (only changed fields); throws OrchestrateApiError when refused
 * @returns true when the run was started, false when cancelled
 */
export async function runDialog(
  job: JobDocument,
  start: (parameters: Record<string, unknown>) => Promise<void>
): Promise<boolean> {
  const fields = parameterFields(job);
  const initial = initialValues(fields);
  let values = initial;
  let errors: IFieldErrors = {};
  for (;;) {
    const shown = { values, errors };
    const body = new FormBody<Record<string, string>>(
      set => (
        <div className="jo-form" data-testid="jo-run-form">
          <GeneralError errors={shown.errors} />
          <ParametersForm fields={fields} values={shown.values} errors={shown.errors} onChange={set} />
        </div>
      ),
      values
    );
    const result = await showDialog({
      title: `Run ${job.name}`,
      body,
      buttons: [Dialog.cancelButton(), Dialog.okButton({ label: 'Run' })]
    });
    if (!result.button.accept) {
      return false;
    }
    values = result.value ?? values;
    errors = valueErrors(fields, values, initial);
    if (Object.keys(errors).length > 0) {
      continue;
    }
    try {
      await start(overrides(fields, values, initial));
      return true;
    } catch (error) {
      if (!(error instanceof OrchestrateApiError) || error.status !== 400) {
        throw error;
      }
      errors = problemErrors(error.problems, error.message, fields);
    }
  }
}

/** What the repair form holds: the chosen tasks, the plan for them (null while planning), the values. */
export interface IRepairState {
  selection: string[];
  plan: RepairPlanDocument | null;
  planError: string;
  values: Record<string, string>;
}

/** The repair form: the run's tasks as checkboxes, the plan for the chosen ones, their parameters. */
export function RepairForm(props: {
  run: RunDocument;
  fields: IParameterField[];
  state: IRepairState;
  errors: IFieldErrors;
  replan: (taskKeys: string[]) => Promise<RepairPlanDocument>;
  onChange: (state: IRepairState) => void;
}): JSX.Element {
  const [state, setState] = useState<IRepairState>(props.state);
  const latest = useRef(0);
  const update = (next: IRepairState) => {
    setState(next);
    props.onChange(next);
  };
  const current = useRef(state);
  current.current = state;
  useEffect(() => () => void (latest.current = -1), []);
  const choose = (key: string, checked: boolean) => {
    const selection = props.run.task_runs
      .map(t => t.task_key)
      .filter(k => (k === key ? checked : current.current.selection.includes(k)));
    const ticket = ++latest.current; // only the answer for the latest selection is shown
    if (selection.length === 0) {
      update({ ...current.current, selection, plan: null, planError: 'Choose at least one task to repair.' });
      return;
    }
    update({ ...current.current, selection, plan: null, planError: '' });
    props.replan(selection).then(
      plan => {
        if (ticket === latest.current) {
          update({ ...current.current, plan, planError: '' });
        }
      },
      error => {
        if (ticket === latest.current) {
          update({ ...current.current, plan: null, planError: error instanceof Error ? error.message : String(error) });
        }
      }
    );
  };
  const rerun = state.plan?.task_keys ?? [];
  return (
    <div className="jo-form" data-testid="jo-repair-plan">
      <GeneralError errors={props.errors} />
      <fieldset className="jo-repair-tasks" data-testid="jo-repair-tasks">
        <legend>Tasks to repair</legend>
        {props.run.task_runs.map(t => (
          <label key={t.task_key} className="jo-check">
            <input
              type="checkbox"
              name={t.task_key}
              checked={state.selection.includes(t.task_key)}
              onChange={event => choose(t.task_key, event.target.checked)}
            />
            <span title={t.task_key}>{t.task_key}</span> <span className="jo-muted">({t.status})</span>
          </label>
        ))}
      </fieldset>
      {state.planError ? (
        <div className="jo-field-error" data-testid="jo-repair-plan-error">
          {state.planError}
        </div>
      ) : state.plan === null ? (
        <div className="jo-muted">Planning…</div>
      ) : (
        <>
          <div>
            <b>Re-executes:</b> <span data-testid="jo-repair-rerun">{state.plan.task_keys.join(', ')}</span>
          </div>
          <div>
            <b>Reused:</b>{' '}
            <span data-testid="jo-repair-reused">{state.plan.reused_task_keys.join(', ') || 'nothing'}</span>
          </div>
        </>
      )}
      <ParametersForm
        fields={repairFields(props.fields, rerun)}
        values={state.values}
        errors={props.errors}
        empty="The tasks that re-execute have no parameters."
        onChange={values => update({ ...current.current, values })}
      />
    </div>
  );
}

/**
 * Choose the tasks to repair (default: the plan's), see the plan for them (re-planned with `replan` on every
 * change), give overrides for the parameters of the tasks that re-execute, and repair with `repair`. Like the
 * run dialog, it stays open with the input on a bad value or a refused request.
 *
 * @param plan the dry-run plan of the default repair (or of the tasks the caller chose)
 * @param replan the dry-run plan for chosen task keys (POST runs/{id}/repair with dry_run)
 * @param repair starts the repair; throws OrchestrateApiError when refused
 * @returns true when the repair was started, false when cancelled
 */
export async function repairDialog(
  run: RunDocument,
  plan: RepairPlanDocument,
  job: JobDocument | undefined,
  replan: (taskKeys: string[]) => Promise<RepairPlanDocument>,
  repair: (request: RepairRequest) => Promise<void>
): Promise<boolean> {
  const fields = job ? parameterFields(job) : [];
  // a job parameter starts at its value in the run (a repair keeps the run's overrides)
  const initial = initialValues(fields, run.parameters);
  let state: IRepairState = {
    selection: [...plan.task_keys],
    plan,
    planError: '',
    values: initial
  };
  let errors: IFieldErrors = {};
  for (;;) {
    const shown = { state, errors };
    const body = new FormBody<IRepairState>(
      set => (
        <RepairForm
          run={run}
          fields={fields}
          state={shown.state}
          errors={shown.errors}
          replan={replan}
          onChange={set}
        />
      ),
      state
    );
    const result = await showDialog({
      title: `Repair run ${run.run_id}`,
      body,
      buttons: [Dialog.cancelButton(), Dialog.okButton({ label: 'Repair' })]
    });
    if (!result.button.accept) {
      return false;
    }
    state = result.value ?? state;
    if (state.plan === null) {
      // still planning, or the chosen tasks cannot be repaired: show the dialog again
      errors = { '': state.planError || 'The plan for the chosen tasks is not ready yet.' };
      if (!state.planError) {
        state = { ...state, plan: await replan(state.selection).catch(() => null) };
      }
      continue;
    }
    const offered = repairFields(fields, state.plan.task_keys);
    errors = valueErrors(offered, state.values, initial);
    if (Object.keys(errors).length > 0) {
      continue;
    }
    try {
      await repair({ task_keys: state.selection, parameters: overrides(offered, state.values, initial) });
      return true;
    } catch (error) {
      if (!(error instanceof OrchestrateApiError) || error.status !== 400) {
        throw error;
      }
      // a problem of a field the form does not show goes to the form's own error line
      errors = problemErrors(error.problems, error.message, offered);
    }
  }
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
