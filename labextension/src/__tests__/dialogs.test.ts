/** The pure parts of the dialogs (src/dialogs.tsx): the parameter form's fields, value parsing, task settings. */
import { describe, expect, it } from 'vitest';

import { JobDocument, TaskDocument } from '../api';
import { parameterFields, parseValue, settingsChanges } from '../dialogs';

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
      { name: 'start', type: 'str', default: '2024-01-01', tasks: ['job'] },
      { name: 'seed', type: 'int', default: '42', tasks: ['extract'] }
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
