/**
 * The dialogs (src/dialogs.tsx): the parameter form's fields, value parsing and checking, prefilled defaults,
 * inline errors that keep the input, fields fed by a task value read-only, the repair form's task choice and
 * its parameters filtered by the tasks that re-execute; task settings.
 */
import React, { act } from 'react';
import { describe, expect, it, vi } from 'vitest';

import { JobDocument, ParameterFieldDocument, RepairPlanDocument, RunDocument, TaskDocument } from '../api';
import {
  checkValue,
  initialValues,
  IRepairState,
  overrides,
  ParametersForm,
  parameterFields,
  parseValue,
  problemErrors,
  RepairForm,
  repairFields,
  settingsChanges,
  valueErrors
} from '../dialogs';
import { interact, render } from './render';

function task(
  task_key: string,
  notebook_parameters: TaskDocument['notebook_parameters'],
  extra: Partial<TaskDocument> = {}
): TaskDocument {
  return {
    task_key,
    notebook: `${task_key}.ipynb`,
    notebook_path: `job/${task_key}.ipynb`,
    depends_on: [],
    run_if: 'all_success',
    parameters: {},
    environment: { kernel_name: null, env: {}, cwd: null },
    kernel_name: 'python3',
    max_retries: 0,
    min_retry_interval_seconds: 0,
    retry_on_timeout: false,
    timeout_seconds: 300,
    notebook_parameters,
    ...extra
  };
}

function job(parameters: Record<string, unknown>, tasks: TaskDocument[]): JobDocument {
  return {
    job_id: 'job',
    name: 'job',
    path: '/srv/job',
    valid: true,
    problems: [],
    schedules: [],
    recent_runs: [],
    parameters,
    tasks
  };
}

// The fields' typing and merging (job defaults win, notebook types fill in, string literals unquoted) is the
// server's: tests/test_documents.py::test_parameter_fields_* (JobDocument.parameter_fields).
describe('parameterFields', () => {
  it("are the job document's, as the server typed them", () => {
    const fields = [
      { name: 'start', type: 'str', default: '2024-01-01', tasks: ['job'], source_task: null },
      { name: 'seed', type: 'int', default: '42', tasks: ['extract'], source_task: null }
    ];
    expect(parameterFields({ ...job({ start: '2024-01-01' }, []), parameter_fields: fields })).toEqual(fields);
  });

  it('has no fields for a job without parameters (or an invalid job without tasks)', () => {
    expect(parameterFields({ ...job({}, []), parameter_fields: [] })).toEqual([]);
    expect(parameterFields({ ...job({}, []), parameters: undefined, tasks: undefined })).toEqual([]);
  });
});

describe('parseValue', () => {
  it('keeps strings for str parameters, even when they look like JSON', () => {
    expect(parseValue('42', 'str')).toBe('42');
    expect(parseValue('None', 'str')).toBe('None');
    expect(parseValue('NL,DE', 'str')).toBe('NL,DE');
  });

  it('reads numbers, lists and objects as JSON', () => {
    expect(parseValue('42', 'int')).toBe(42);
    expect(parseValue('0.5', 'float')).toBe(0.5);
    expect(parseValue('0.5', null)).toBe(0.5);
    expect(parseValue('[1, "a"]', 'list')).toEqual([1, 'a']);
    expect(parseValue('{"a": 1}', 'dict')).toEqual({ a: 1 });
  });

  it('reads Python and JSON literals', () => {
    expect(parseValue('True', 'bool')).toBe(true);
    expect(parseValue('False', null)).toBe(false);
    expect(parseValue('None', 'float')).toBeNull();
    expect(parseValue('true', 'bool')).toBe(true);
    expect(parseValue('null', null)).toBeNull();
  });

  it('falls back to the raw string when it is not JSON', () => {
    expect(parseValue('abc', 'int')).toBe('abc');
    expect(parseValue('2024-01-01', null)).toBe('2024-01-01');
  });
});

describe('settingsChanges', () => {
  const base = task('validate', [], {
    depends_on: ['extract'],
    environment: { kernel_name: 'old', env: { A: '1' }, cwd: '/tmp' }
  });

  it('turns the form into the PUT body with typed numbers', () => {
    expect(
      settingsChanges(base, {
        depends_on: ['extract', 'other'],
        run_if: 'all_done',
        kernel_name: 'python3',
        max_retries: '2',
        timeout_seconds: '120.5'
      })
    ).toEqual({
      depends_on: ['extract', 'other'],
      run_if: 'all_done',
      environment: { kernel_name: 'python3', env: { A: '1' }, cwd: '/tmp' },
      max_retries: 2,
      timeout_seconds: 120.5
    });
  });

  it('clears empty fields with null and keeps the rest of the environment', () => {
    const changes = settingsChanges(base, {
      depends_on: [],
      run_if: 'all_success',
      kernel_name: '',
      max_retries: '',
      timeout_seconds: ''
    });
    expect(changes).toEqual({
      depends_on: [],
      run_if: 'all_success',
      environment: { kernel_name: null, env: { A: '1' }, cwd: '/tmp' },
      max_retries: null,
      timeout_seconds: null
    });
    // the task itself is not modified
    expect(base.environment.kernel_name).toBe('old');
  });
});

function field(
  name: string,
  type: string | null,
  defaultText: string,
  tasks: string[],
  source_task: string | null = null
): ParameterFieldDocument {
  return { name, type, default: defaultText, tasks, source_task };
}

// green_energy's fields as the server gives them (tests/server/test_dialog_api.py checks source_task there)
const FIELDS = [
  field('start_date', 'str', '2024-01-01', ['job', 'bronze']),
  field('output_dir', 'str', 'output/run-{{job.run_id}}', ['job', 'bronze', 'silver', 'report']),
  field('input_csv', 'str', 'data/readings.csv', ['bronze']),
  field('n_rows', 'int', '20', ['bronze']),
  field('bronze_rows', 'int', '0', ['silver'], 'bronze'),
  field('ratio', 'float', '0.5', ['report']),
  field('threshold', null, 'null', ['job', 'report'])
];

/** Type `text` into an input the way a user does (React listens for `input` events). */
function type(input: HTMLInputElement, text: string): void {
  const setter = Object.getOwnPropertyDescriptor(HTMLInputElement.prototype, 'value')!.set!;
  interact(() => {
    setter.call(input, text);
    input.dispatchEvent(new Event('input', { bubbles: true }));
  });
}

function input(container: HTMLElement, name: string): HTMLInputElement {
  const found = container.querySelector<HTMLInputElement>(`input[name="${name}"]`);
  expect(found, name).not.toBeNull();
  return found!;
}

describe('checkValue', () => {
  it('accepts values of the type, like the server (parameters.coerce)', () => {
    expect(checkValue('42', 'int')).toBeNull();
    expect(checkValue('-3', 'int')).toBeNull();
    expect(checkValue('1', 'float')).toBeNull();
    expect(checkValue('0.5', 'float')).toBeNull();
    expect(checkValue('True', 'bool')).toBeNull();
    expect(checkValue('[1]', 'list')).toBeNull();
    expect(checkValue('{"a": 1}', 'dict')).toBeNull();
    expect(checkValue('anything', 'str')).toBeNull();
    expect(checkValue('abc', null)).toBeNull();
  });

  it('names the type of a value that is not of it', () => {
    expect(checkValue('abc', 'int')).toBe('"abc" is not a valid int');
    expect(checkValue('1.5', 'int')).toBe('"1.5" is not a valid int');
    expect(checkValue('1.0', 'int')).toBe('"1.0" is not a valid int'); // Python reads a float
    expect(checkValue('1e3', 'int')).toBe('"1e3" is not a valid int');
    expect(checkValue('true', 'int')).toBe('"true" is not a valid int');
    expect(checkValue('', 'int')).toBe('"" is not a valid int');
    expect(checkValue('NaN', 'float')).toBe('"NaN" is not a valid float');
    expect(checkValue('1', 'bool')).toBe('"1" is not a valid bool');
    expect(checkValue('[1]', 'dict')).toBe('"[1]" is not a valid dict');
    expect(checkValue('1', 'list')).toBe('"1" is not a valid list');
    expect(checkValue('1e999', 'float')).toBe('"1e999" is not a finite number');
    expect(checkValue('-1e999', null)).toBe('"-1e999" is not a finite number');
    expect(checkValue('1e999', 'str')).toBeNull();
  });
});

describe('the run form values', () => {
  it("start at the defaults, and at the run's value for job parameters when given", () => {
    expect(initialValues(FIELDS)).toEqual({
      start_date: '2024-01-01',
      output_dir: 'output/run-{{job.run_id}}',
      input_csv: 'data/readings.csv',
      n_rows: '20',
      bronze_rows: '0',
      ratio: '0.5',
      threshold: 'null'
    });
    const fromRun = initialValues(FIELDS, { threshold: 0.5, start_date: '2024-02-01', n_rows: 99 });
    expect(fromRun.threshold).toBe('0.5');
    expect(fromRun.start_date).toBe('2024-02-01');
    expect(fromRun.n_rows).toBe('20'); // not a job parameter: run.parameters do not hold it
  });

  it('send only the changed values, typed, never a field fed by a task value', () => {
    const initial = initialValues(FIELDS);
    expect(overrides(FIELDS, initial)).toEqual({});
    const values = { ...initial, n_rows: '25', start_date: '2024-03-01', bronze_rows: '7', threshold: 'null' };
    expect(overrides(FIELDS, values)).toEqual({ n_rows: 25, start_date: '2024-03-01' });
    // against the run's values: going back to the default is a change
    const fromRun = initialValues(FIELDS, { threshold: 0.5 });
    expect(overrides(FIELDS, { ...fromRun, threshold: 'null' }, fromRun)).toEqual({ threshold: null });
  });

  it('check changed values only, and not fed fields', () => {
    const initial = initialValues(FIELDS);
    expect(valueErrors(FIELDS, initial)).toEqual({});
    expect(valueErrors(FIELDS, { ...initial, n_rows: 'abc', ratio: 'x', bronze_rows: 'abc', input_csv: '42' })).toEqual(
      {
        n_rows: '"abc" is not a valid int',
        ratio: '"x" is not a valid float'
      }
    );
  });

  it("put the server's problems at their fields, and the others at the form", () => {
    const errors = problemErrors(
      [
        { path: '', field: 'parameters.n_rows', message: "parameter 'n_rows' is int; 'abc' is not a valid int" },
        { path: '', field: 'parameters.zzz', message: "no job parameter or notebook parameter is named 'zzz'" },
        { path: 'job/job.yaml', field: 'tasks', message: 'the job changed' }
      ],
      'refused',
      FIELDS
    );
    expect(errors).toEqual({
      n_rows: "parameter 'n_rows' is int; 'abc' is not a valid int",
      '': "parameters.zzz: no job parameter or notebook parameter is named 'zzz'\ntasks: the job changed"
    });
    expect(problemErrors([], 'cannot reach the server', FIELDS)).toEqual({ '': 'cannot reach the server' });
  });
});

describe('ParametersForm', () => {
  it('shows defaults as values (not placeholders) and fed fields read-only "from task bronze"', () => {
    const onChange = vi.fn();
    const { container, unmount } = render(
      React.createElement(ParametersForm, { fields: FIELDS, values: initialValues(FIELDS), errors: {}, onChange })
    );
    expect(input(container, 'n_rows').value).toBe('20');
    expect(input(container, 'start_date').value).toBe('2024-01-01');
    expect(input(container, 'n_rows').placeholder).toBe('');
    const fed = input(container, 'bronze_rows');
    expect(fed.readOnly && fed.disabled).toBe(true);
    expect(fed.value).toBe('from task bronze');
    expect(container.querySelector('[data-field="bronze_rows"]')!.textContent).toContain('from task bronze');
    expect(input(container, 'n_rows').disabled).toBe(false);
    type(input(container, 'n_rows'), 'abc');
    expect(onChange).toHaveBeenLastCalledWith({ ...initialValues(FIELDS), n_rows: 'abc' });
    unmount();
  });

  it("shows a field's error next to it and keeps the user's input", () => {
    const values = { ...initialValues(FIELDS), n_rows: 'abc' };
    const errors = valueErrors(FIELDS, values);
    const { container, unmount } = render(
      React.createElement(ParametersForm, { fields: FIELDS, values, errors, onChange: () => undefined })
    );
    expect(input(container, 'n_rows').value).toBe('abc');
    expect(input(container, 'n_rows').getAttribute('aria-invalid')).toBe('true');
    expect(container.querySelector('[data-field="n_rows"] .jo-field-error')!.textContent).toBe(
      '"abc" is not a valid int'
    );
    expect(container.querySelectorAll('.jo-field-error')).toHaveLength(1);
    unmount();
  });
});

describe('repair', () => {
  it('offers only the parameters of the tasks that re-execute', () => {
    expect(repairFields(FIELDS, ['report']).map(f => f.name)).toEqual(['output_dir', 'ratio', 'threshold']);
    expect(repairFields(FIELDS, ['silver']).map(f => f.name)).toEqual(['output_dir', 'bronze_rows']);
    expect(repairFields(FIELDS, ['bronze', 'silver', 'report']).map(f => f.name)).toEqual(FIELDS.map(f => f.name));
    expect(repairFields(FIELDS, [])).toEqual([]);
  });

  const run = {
    run_id: 7,
    parameters: {},
    task_runs: [
      { task_key: 'bronze', status: 'succeeded' },
      { task_key: 'silver', status: 'failed' },
      { task_key: 'report', status: 'upstream_failed' }
    ]
  } as unknown as RunDocument;
  const plan = (task_keys: string[], reused_task_keys: string[]): RepairPlanDocument => ({
    run_id: 7,
    task_keys,
    reused_task_keys,
    parameters: {}
  });

  it('re-plans when the chosen tasks change and offers the parameters of the new plan', async () => {
    let answer: (p: RepairPlanDocument) => void = () => undefined;
    const replan = vi.fn(
      (_keys: string[]) =>
        new Promise<RepairPlanDocument>(resolve => {
          answer = resolve;
        })
    );
    const onChange = vi.fn();
    const state: IRepairState = {
      selection: ['silver', 'report'],
      plan: plan(['silver', 'report'], ['bronze']),
      planError: '',
      values: initialValues(FIELDS)
    };
    const { container, unmount } = render(
      React.createElement(RepairForm, { run, fields: FIELDS, state, errors: {}, replan, onChange })
    );
    const text = (id: string) => container.querySelector(`[data-testid="${id}"]`)?.textContent;
    const names = () => Array.from(container.querySelectorAll<HTMLInputElement>('[data-field] input')).map(i => i.name);
    expect(input(container, 'silver').checked && input(container, 'report').checked).toBe(true);
    expect(input(container, 'bronze').checked).toBe(false);
    expect(text('jo-repair-rerun')).toBe('silver, report');
    expect(text('jo-repair-reused')).toBe('bronze');
    // bronze's own parameters (input_csv, n_rows) are not offered: bronze is reused
    expect(names()).toEqual(['output_dir', 'bronze_rows', 'ratio', 'threshold']);

    interact(() => input(container, 'bronze').click());
    expect(replan).toHaveBeenLastCalledWith(['bronze', 'silver', 'report']);
    expect(container.textContent).toContain('Planning');
    await act(async () => answer(plan(['bronze', 'silver', 'report'], [])));
    expect(text('jo-repair-rerun')).toBe('bronze, silver, report');
    expect(text('jo-repair-reused')).toBe('nothing');
    expect(names()).toEqual(FIELDS.map(f => f.name));
    expect(onChange).toHaveBeenLastCalledWith(
      expect.objectContaining({ selection: ['bronze', 'silver', 'report'], planError: '' })
    );

    // no task chosen: no plan, and the form says why
    for (const key of ['bronze', 'silver', 'report']) {
      interact(() => input(container, key).click());
    }
    expect(text('jo-repair-plan-error')).toBe('Choose at least one task to repair.');
    expect(names()).toEqual([]);
    unmount();
  });

  it("shows the server's refusal of a plan", async () => {
    const replan = vi.fn(() => Promise.reject(new Error('run 7 has nothing to repair')));
    const state: IRepairState = {
      selection: ['silver'],
      plan: plan(['silver', 'report'], ['bronze']),
      planError: '',
      values: {}
    };
    const { container, unmount } = render(
      React.createElement(RepairForm, { run, fields: FIELDS, state, errors: {}, replan, onChange: () => undefined })
    );
    await act(async () => input(container, 'report').click());
    expect(container.querySelector('[data-testid="jo-repair-plan-error"]')?.textContent).toBe(
      'run 7 has nothing to repair'
    );
    unmount();
  });
});
