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

const param = (name: string, def: string | null, type: string | null) => ({
  name,
  default: def,
  inferred_type: type,
  help: ''
});

describe('parameterFields', () => {
  it('types the job parameters from their defaults', () => {
    const fields = parameterFields(
      job({ start: '2024-01-01', n: 3, ratio: 0.5, flag: false, items: [1, 2], threshold: null }, [])
    );
    expect(fields).toEqual([
      { name: 'start', type: 'str', default: '2024-01-01', tasks: ['job'] },
      { name: 'n', type: 'int', default: '3', tasks: ['job'] },
      { name: 'ratio', type: 'float', default: '0.5', tasks: ['job'] },
      { name: 'flag', type: 'bool', default: 'false', tasks: ['job'] },
      { name: 'items', type: 'list', default: '[1,2]', tasks: ['job'] },
      { name: 'threshold', type: null, default: 'null', tasks: ['job'] }
    ]);
  });

  it('merges notebook parameters by name; the job default wins, the notebook gives a missing type', () => {
    const fields = parameterFields(
      job({ output_dir: 'output/run-{{job.run_id}}', threshold: null }, [
        task('extract', [param('output_dir', '"output"', 'str'), param('seed', '42', 'int')]),
        task('validate', [param('output_dir', '"output"', 'str'), param('threshold', 'None', 'float')])
      ])
    );
    const byName = Object.fromEntries(fields.map(f => [f.name, f]));
    expect(Object.keys(byName)).toEqual(['output_dir', 'threshold', 'seed']);
    expect(byName.output_dir).toEqual({
      name: 'output_dir',
      type: 'str',
      default: 'output/run-{{job.run_id}}',
      tasks: ['job', 'extract', 'validate']
    });
    expect(byName.threshold).toEqual({ name: 'threshold', type: 'float', default: 'null', tasks: ['job', 'validate'] });
    expect(byName.seed).toEqual({ name: 'seed', type: 'int', default: '42', tasks: ['extract'] });
  });

  it('strips the quotes of string literals only', () => {
    const fields = parameterFields(
      job({}, [
        task('a', [
          param('path', '"data/readings.csv"', 'str'),
          param('single', "'x'", 'str'),
          param('mixed', '"x\'', 'str')
        ]),
        task('b', [param('items', '["a", "b"]', 'list'), param('nothing', null, null)])
      ])
    );
    expect(fields.map(f => [f.name, f.default, f.type])).toEqual([
      ['path', 'data/readings.csv', 'str'],
      ['single', 'x', 'str'],
      ['mixed', '"x\'', 'str'],
      ['items', '["a", "b"]', 'list'],
      ['nothing', '', null]
    ]);
  });

  it('has no fields for a job without parameters (or an invalid job without tasks)', () => {
    expect(parameterFields(job({}, []))).toEqual([]);
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
