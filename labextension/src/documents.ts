/* eslint-disable */
/**
 * GENERATED FILE, DO NOT EDIT: the response documents of the jupyter-orchestrate REST API, from
 * schema/documents.json (`python -m jupyter_orchestrate.schemas.export`, then `npm run build:types`).
 * The models are jupyter_orchestrate/schemas/documents.py (the event stream's: schemas/events.py).
 */

/**
 * Status of a task run (Airflow's task instance states, Databricks' names where they differ).
 *
 * This interface was referenced by `JupyterOrchestrateDocuments`'s JSON-Schema
 * via the `definition` "TaskRunStatus".
 */
export type TaskRunStatus =
  | 'pending'
  | 'queued'
  | 'running'
  | 'up_for_retry'
  | 'succeeded'
  | 'failed'
  | 'upstream_failed'
  | 'skipped'
  | 'canceled'
  | 'timed_out';
/**
 * Why an attempt failed (:attr:`AttemptError.kind`).
 *
 * This interface was referenced by `JupyterOrchestrateDocuments`'s JSON-Schema
 * via the `definition` "AttemptErrorKind".
 */
export type AttemptErrorKind =
  | 'cell_error'
  | 'kernel_died'
  | 'timeout'
  | 'canceled'
  | 'early_exit'
  | 'launch_error'
  | 'parameter_error'
  | 'orchestrator_died'
  | 'internal'
  | 'child_run_failed';
/**
 * What a schedule does about fires missed while no scheduler ran.
 *
 * This interface was referenced by `JupyterOrchestrateDocuments`'s JSON-Schema
 * via the `definition` "CatchupPolicy".
 */
export type CatchupPolicy = 'none' | 'latest' | 'all';
/**
 * Status of a run.
 *
 * This interface was referenced by `JupyterOrchestrateDocuments`'s JSON-Schema
 * via the `definition` "RunStatus".
 */
export type RunStatus = 'queued' | 'running' | 'succeeded' | 'failed' | 'canceling' | 'canceled';
/**
 * The comparison of a condition task (Databricks If/else condition task operators).
 *
 * This interface was referenced by `JupyterOrchestrateDocuments`'s JSON-Schema
 * via the `definition` "ConditionOp".
 */
export type ConditionOp = '==' | '!=' | '>' | '>=' | '<' | '<=';
/**
 * The outcome of a condition task that a dependency asks for (``depends_on: [{task_key, outcome}]``).
 *
 * This interface was referenced by `JupyterOrchestrateDocuments`'s JSON-Schema
 * via the `definition` "ConditionOutcome".
 */
export type ConditionOutcome = 'true' | 'false';
/**
 * Status of a schedule or trigger fire recorded by the scheduler.
 *
 * This interface was referenced by `JupyterOrchestrateDocuments`'s JSON-Schema
 * via the `definition` "FireStatus".
 */
export type FireStatus = 'firing' | 'queued' | 'started' | 'skipped' | 'failed';
/**
 * When a task runs, given the outcomes of its dependencies (semantics of Databricks ``run_if``).
 *
 * This interface was referenced by `JupyterOrchestrateDocuments`'s JSON-Schema
 * via the `definition` "RunIf".
 */
export type RunIf =
  'all_success' | 'at_least_one_success' | 'none_failed' | 'all_done' | 'at_least_one_failed' | 'all_failed';
/**
 * Life of a kept kernel: ``kept`` (alive, waiting for debugging or a resume), ``in_use`` (a resume is
 * executing in it), ``ended`` (shut down or reaped; ``end_reason`` says why).
 *
 * This interface was referenced by `JupyterOrchestrateDocuments`'s JSON-Schema
 * via the `definition` "KeptKernelStatus".
 */
export type KeptKernelStatus = 'kept' | 'in_use' | 'ended';
/**
 * What started a run.
 *
 * This interface was referenced by `JupyterOrchestrateDocuments`'s JSON-Schema
 * via the `definition` "Trigger".
 */
export type Trigger = 'manual' | 'schedule' | 'file_arrival' | 'job_completion' | 'api' | 'run_job';
/**
 * A message of the server's event stream (``GET events``): one of the run events, told apart by
 * ``type``.
 *
 * This interface was referenced by `JupyterOrchestrateDocuments`'s JSON-Schema
 * via the `definition` "StreamEvent".
 */
export type StreamEvent = RunStatusStreamEvent | TaskStatusStreamEvent | ProgressStreamEvent;

/**
 * Generated from jupyter_orchestrate.schemas.documents and .events; do not edit.
 */
export interface JupyterOrchestrateDocuments {
  [k: string]: unknown;
}
/**
 * One attempt of a task run. ``executed_notebook_path`` is relative to the server root (null without a
 * root or when the state home is outside it); ``executed_notebook`` and ``log`` are absolute paths.
 *
 * This interface was referenced by `JupyterOrchestrateDocuments`'s JSON-Schema
 * via the `definition` "AttemptDocument".
 */
export interface AttemptDocument {
  executed_notebook_path: string | null;
  attempt_number: number;
  repair_number: number;
  status: TaskRunStatus;
  /**
   * When the task run was queued for this attempt (null in older records).
   */
  queued_time: string | null;
  start_time: string | null;
  /**
   * When the attempt's kernel was ready: before `start_time` for a kernel started ahead of need; null until ready and in older records.
   */
  kernel_ready_time: string | null;
  end_time: string | null;
  duration_seconds: number | null;
  executed_notebook: string | null;
  log: string | null;
  parameters: {
    [k: string]: unknown;
  };
  cells_completed: number | null;
  cells_total: number | null;
  environment: AttemptEnvironment;
  error: AttemptError | null;
  /**
   * A resumed attempt: the input notebook's index of the cell it resumed from (it executed from there in the failed attempt's kept kernel); null for an attempt from the top.
   */
  resumed_from_cell: number | null;
  /**
   * A resumed attempt: code cells copied with their outputs from the failed attempt.
   */
  reused_cells: number | null;
}
/**
 * What an attempt ran in, as the worker recorded it (variable names only, never values): the kernel
 * (``kernel_name``) or interpreter (``python``), ``env_names``, ``requirements``, and for a built
 * environment its ``package_hash``, ``freeze`` (installed packages) and ``built_now``; an attempt of the dask
 * executor also where it ran (``dask_worker`` address, ``host`` name). Only the recorded fields are present
 * (an attempt that never started has none).
 *
 * This interface was referenced by `JupyterOrchestrateDocuments`'s JSON-Schema
 * via the `definition` "AttemptEnvironment".
 */
export interface AttemptEnvironment {
  kernel_name?: string | null;
  python?: string | null;
  env_names?: string[];
  requirements?: string[];
  package_hash?: string | null;
  freeze?: string[];
  built_now?: boolean;
  dask_worker?: string | null;
  host?: string | null;
  [k: string]: unknown;
}
/**
 * Why an attempt failed, as separate fields (never one flattened string).
 *
 * ``kind``: ``cell_error`` (an exception in a cell), ``kernel_died``, ``timeout``, ``canceled``,
 * ``early_exit`` (``sys.exit`` left cells unexecuted), ``launch_error`` (the kernel could not start),
 * ``orchestrator_died`` or ``internal``. ``cell_index`` is the 0-based index of the failing cell in the
 * *input* notebook (None for the injected-parameters cell; shown as :func:`cell_label`);
 * ``executed_cell_index`` its index in the executed notebook as saved.
 *
 * This interface was referenced by `JupyterOrchestrateDocuments`'s JSON-Schema
 * via the `definition` "AttemptError".
 */
export interface AttemptError {
  kind: AttemptErrorKind;
  ename: string;
  evalue: string;
  traceback: string[];
  cell_index: number | null;
  executed_cell_index: number | null;
  cell_source: string | null;
  execution_count: number | null;
}
/**
 * One of a task's slowest code cells over the trends' runs (every attempt counts).
 *
 * This interface was referenced by `JupyterOrchestrateDocuments`'s JSON-Schema
 * via the `definition` "CellTrendDocument".
 */
export interface CellTrendDocument {
  /**
   * 0-based index in the input notebook; None for the injected-parameters cell.
   */
  cell_index: number | null;
  /**
   * How many times the cell executed (attempts of those runs).
   */
  executions: number;
  median_duration_seconds: number;
  max_duration_seconds: number;
  /**
   * The first non-blank line of the cell's source as last recorded (secrets redacted).
   */
  source_first_line: string | null;
}
/**
 * A run that a run-job task of this run started: the task, the child's run id and status.
 *
 * This interface was referenced by `JupyterOrchestrateDocuments`'s JSON-Schema
 * via the `definition` "ChildRun".
 */
export interface ChildRun {
  task_key: string;
  run_id: number;
  job_name: string;
  status: RunStatus;
}
/**
 * A condition task's ``left op right`` (Databricks If/else condition task), evaluated by the engine
 * without a kernel once the task's dependencies are done; its outcome is ``true`` or ``false``.
 *
 * Operands are JSON scalars or strings holding ``{{...}}`` references (``{{tasks.silver.values.rows}}``,
 * ``{{job.parameters.country}}``); a string that is exactly one reference takes the referenced value's
 * type. ``==``/``!=`` compare values (``1 == 1.0``); ordering operators need two numbers or two strings
 * (:func:`~.conditions.evaluate`).
 *
 * This interface was referenced by `JupyterOrchestrateDocuments`'s JSON-Schema
 * via the `definition` "Condition".
 */
export interface Condition {
  left: boolean | number | string;
  op: ConditionOp;
  right: boolean | number | string;
}
/**
 * Where a notification goes: a webhook (JSON POST with a Slack-compatible ``text``) or email addresses.
 *
 * SMTP host, port and credentials come from configuration or the environment, never from job files.
 *
 * This interface was referenced by `JupyterOrchestrateDocuments`'s JSON-Schema
 * via the `definition` "Destination".
 */
export interface Destination {
  webhook: string | null;
  email: string[] | null;
  timeout_seconds: number;
  retries: number;
}
/**
 * A DAG edge: ``downstream`` depends on ``upstream``.
 *
 * This interface was referenced by `JupyterOrchestrateDocuments`'s JSON-Schema
 * via the `definition` "EdgeDocument".
 */
export interface EdgeDocument {
  upstream: string;
  downstream: string;
}
/**
 * What a task runs in.
 *
 * Fields:
 *     kernel_name: an installed kernelspec; None means the notebook's own ``metadata.kernelspec.name``.
 *     python: an interpreter (a venv's or conda env's ``bin/python``, absolute or relative to the job folder)
 *         that has ipykernel: the kernel runs on it, no kernelspec needed.
 *     requirements / requirements_file: pip requirements; the orchestrator builds (once) and caches a
 *         virtual environment for exactly that set under the state home and runs the kernel in it.
 *     env: environment variables added to the kernel's environment; ``${NAME}`` takes NAME from the
 *         orchestrator's environment (so secrets stay out of job files).
 *     secret_env: names of variables whose values are redacted in logs, executed notebooks and the UI (names
 *         containing TOKEN, SECRET, PASSWORD or KEY are secret anyway).
 *     cwd: working directory, relative to the job folder (default: the notebook's own folder).
 *
 * This interface was referenced by `JupyterOrchestrateDocuments`'s JSON-Schema
 * via the `definition` "Environment".
 */
export interface Environment {
  kernel_name: string | null;
  python: string | null;
  requirements: string[] | null;
  requirements_file: string | null;
  env: {
    [k: string]: string;
  };
  secret_env: string[];
  cwd: string | null;
}
/**
 * Every error answer of the REST API: the message and, for validation errors, the problems.
 *
 * This interface was referenced by `JupyterOrchestrateDocuments`'s JSON-Schema
 * via the `definition` "ErrorDocument".
 */
export interface ErrorDocument {
  message: string;
  /**
   * Only for validation errors.
   */
  problems?: ErrorProblem[] | null;
}
/**
 * A validation problem of an error answer: ``path: field: message``.
 *
 * This interface was referenced by `JupyterOrchestrateDocuments`'s JSON-Schema
 * via the `definition` "ErrorProblem".
 */
export interface ErrorProblem {
  path: string;
  field: string;
  message: string;
}
/**
 * One fire of a schedule.
 *
 * This interface was referenced by `JupyterOrchestrateDocuments`'s JSON-Schema
 * via the `definition` "FireDocument".
 */
export interface FireDocument {
  /**
   * The fire time the rule gave (ISO, UTC).
   */
  scheduled_time: string;
  /**
   * When the scheduler handled it (ISO, UTC).
   */
  fire_time: string | null;
  status: FireStatus;
  run_id: number | null;
  reason: string | null;
}
/**
 * A for-each task (Databricks For each, Airflow's dynamic task mapping): at run time, once its
 * dependencies are done, the task expands into one iteration per element of ``inputs``, each an execution of
 * the task's notebook with parameter ``parameter`` set to the element (``map_index`` from 0), at most
 * ``concurrency`` at once and within the run's ``max_parallel_tasks``.
 *
 * ``inputs``: a JSON list, or a string that is one reference resolving to a list
 * (``"{{tasks.list_files.values.files}}"``). ``max_inputs``: more elements fail the task (1,000).
 *
 * This interface was referenced by `JupyterOrchestrateDocuments`'s JSON-Schema
 * via the `definition` "ForEach".
 */
export interface ForEach {
  inputs: unknown[] | string;
  concurrency: number;
  parameter: string;
  max_inputs: number;
}
/**
 * A job (``GET jobs``, ``GET jobs/{job}``): tasks with settings and notebook parameters, DAG edges, job
 * parameters, schedules with their state, the last 10 runs, and ``problems`` (``valid`` is False when one
 * refuses the job; an invalid job's document has none of the fields from ``description`` on).
 *
 * This interface was referenced by `JupyterOrchestrateDocuments`'s JSON-Schema
 * via the `definition` "JobDocument".
 */
export interface JobDocument {
  /**
   * The job folder relative to the server root.
   */
  job_id: string;
  name: string;
  /**
   * The job folder (absolute).
   */
  path: string;
  valid: boolean;
  problems: ProblemDocument[];
  schedules: ScheduleDocument[];
  /**
   * The last 10 runs, newest first.
   */
  recent_runs: RecentRunDocument[];
  description?: string | null;
  parameters?: {
    [k: string]: unknown;
  };
  /**
   * The run form's fields: every job and notebook parameter, typed.
   */
  parameter_fields?: ParameterFieldDocument[];
  max_parallel_tasks?: number | null;
  max_concurrent_runs?: number;
  queue?: boolean;
  edges?: EdgeDocument[];
  tasks?: TaskDocument[];
}
/**
 * A validation problem: ``path: field: message`` (``text``), the task it belongs to, its severity.
 *
 * This interface was referenced by `JupyterOrchestrateDocuments`'s JSON-Schema
 * via the `definition` "ProblemDocument".
 */
export interface ProblemDocument {
  path: string;
  field: string;
  message: string;
  text: string;
  /**
   * Set when the problem is one task's: the job still runs, that task fails at once.
   */
  task_key: string | null;
  /**
   * `error` or `warning` (a warning never stops anything).
   */
  severity: string;
}
/**
 * A schedule of a job (job.yaml ``schedules:``) with its state: the effective ``paused``,
 * ``next_fire_time`` (null while paused), ``last_fire_time`` and the 5 latest fires, newest first.
 *
 * This interface was referenced by `JupyterOrchestrateDocuments`'s JSON-Schema
 * via the `definition` "ScheduleDocument".
 */
export interface ScheduleDocument {
  name: string;
  cron: string | null;
  every: string | null;
  timezone: string;
  paused: boolean;
  parameters: {
    [k: string]: unknown;
  };
  catchup: CatchupPolicy;
  max_catchup_runs: number;
  next_fire_time: string | null;
  last_fire_time: string | null;
  recent_fires: FireDocument[];
}
/**
 * One of a job's recent runs.
 *
 * This interface was referenced by `JupyterOrchestrateDocuments`'s JSON-Schema
 * via the `definition` "RecentRunDocument".
 */
export interface RecentRunDocument {
  run_id: number;
  status: RunStatus;
  start_time: string;
}
/**
 * A field of the sidebar's "Run with parameters" form: a job parameter or notebook parameter (merged by
 * name, the job's first), its type (:func:`~jupyter_orchestrate.parameters.parameter_type`, the rule ``-p``
 * values are typed by; null when unknown), its default as text, who uses it (``job`` and task keys) and,
 * when an upstream task value feeds it, that task (``source_task``; the form shows it read-only).
 *
 * This interface was referenced by `JupyterOrchestrateDocuments`'s JSON-Schema
 * via the `definition` "ParameterFieldDocument".
 */
export interface ParameterFieldDocument {
  name: string;
  type: string | null;
  /**
   * A job default as given (strings) or JSON; a notebook's as its source.
   */
  default: string;
  /**
   * Who uses it: `job` for a job parameter, then the tasks whose notebook declares it or whose task parameters reference it (`{{job.parameters.<name>}}`); a repair offers it when one of these tasks re-executes.
   */
  tasks: string[];
  /**
   * The upstream task whose task value (`{{tasks.<task_key>.values.<name>}}`) feeds this notebook parameter in every task that declares it; null for job parameters and fields the user sets.
   */
  source_task: string | null;
}
/**
 * A task of a job document: its settings as :class:`~jupyter_orchestrate.models.Task`, the notebook
 * relative to the server root and the notebook's parameters.
 *
 * This interface was referenced by `JupyterOrchestrateDocuments`'s JSON-Schema
 * via the `definition` "TaskDocument".
 */
export interface TaskDocument {
  task_key: string;
  notebook: string | null;
  depends_on: string[];
  depends_on_outcomes: {
    [k: string]: ConditionOutcome;
  };
  run_if: RunIf;
  condition: Condition | null;
  run_job: RunJob | null;
  for_each: ForEach | null;
  group: string | null;
  parameters: {
    [k: string]: unknown;
  };
  environment: Environment;
  kernel_name: string;
  max_retries: number;
  min_retry_interval_seconds: number;
  max_retry_interval_seconds: number;
  retry_on_timeout: boolean;
  timeout_seconds: number | null;
  keep_failed_kernels_seconds: number | null;
  resources: {
    [k: string]: number;
  };
  description: string | null;
  notifications: Notifications | null;
  notebook_parameters: NotebookParameterDocument[];
  problem: TaskProblem | null;
  warnings: string[];
  /**
   * The notebook relative to the server root.
   */
  notebook_path: string | null;
}
/**
 * A run-job task (Databricks Run Job task): it starts a run of the job in folder ``job`` (relative to this
 * job's folder, inside the workspace), in the same state home, waits for it and ends as it ends. ``parameters``
 * (job or notebook parameters of that job; values may hold references such as ``{{tasks.x.values.y}}``)
 * override its defaults. The child run links to its parent (``Run.parent_run_id``) and back
 * (``Run.child_runs``); a repair of the parent repairs the child run instead of starting another.
 *
 * This interface was referenced by `JupyterOrchestrateDocuments`'s JSON-Schema
 * via the `definition` "RunJob".
 */
export interface RunJob {
  job: string;
  parameters: {
    [k: string]: unknown;
  };
}
/**
 * Notifications of a job or a task (semantics of Databricks job notifications).
 *
 * This interface was referenced by `JupyterOrchestrateDocuments`'s JSON-Schema
 * via the `definition` "Notifications".
 */
export interface Notifications {
  on_start: Destination[];
  on_success: Destination[];
  on_failure: Destination[];
  on_duration_warning: Destination[];
  duration_warning_seconds: number | null;
}
/**
 * A parameter of a task's notebook (its parameters cell): the default as source text and its type.
 *
 * This interface was referenced by `JupyterOrchestrateDocuments`'s JSON-Schema
 * via the `definition` "NotebookParameterDocument".
 */
export interface NotebookParameterDocument {
  name: string;
  default: string | null;
  inferred_type: string | null;
  help: string;
}
/**
 * Why one task cannot execute although its job can: ``stage`` is what failed (``reading the notebook``,
 * ``resolving the kernel``), ``message`` the problem. Such a task run ends ``failed`` without an attempt (no
 * papermill execution happened) and its dependents follow their ``run_if``.
 *
 * This interface was referenced by `JupyterOrchestrateDocuments`'s JSON-Schema
 * via the `definition` "TaskProblem".
 */
export interface TaskProblem {
  stage: string;
  message: string;
}
/**
 * ``GET jobs``: every job under the job roots.
 *
 * This interface was referenced by `JupyterOrchestrateDocuments`'s JSON-Schema
 * via the `definition` "JobListDocument".
 */
export interface JobListDocument {
  jobs: JobDocument[];
}
/**
 * The live kernel of a task run's last attempt, kept after it failed in a cell: debug it (a console on
 * ``connection_file``, or ``POST runs/{run_id}/tasks/{task_key}/kernel`` in JupyterLab) and resume from
 * ``cell_index`` (``POST runs/{run_id}/repair`` with ``resume``). The connection file holds the kernel's key;
 * this document never does.
 *
 * This interface was referenced by `JupyterOrchestrateDocuments`'s JSON-Schema
 * via the `definition` "KeptKernelDocument".
 */
export interface KeptKernelDocument {
  attempt_number: number;
  /**
   * The input notebook's index (0-based) of the failed cell.
   */
  cell_index: number | null;
  kernel_pid: number;
  /**
   * The kernel process's start (seconds since the epoch).
   */
  kernel_create_time: number | null;
  kept_time: string;
  /**
   * When the kernel is shut down unless resumed (UTC).
   */
  expires_time: string;
  status: KeptKernelStatus;
  /**
   * The kernel's connection file (absolute, under the state home).
   */
  connection_file: string;
  /**
   * The terminal command that attaches a console to the kernel.
   */
  console_command: string;
}
/**
 * Answer of ``POST runs/{run_id}/tasks/{task_key}/kernel``: the task's kept kernel, registered with the
 * Jupyter server, so a JupyterLab console or notebook attaches to it by ``kernel_id`` (``/api/kernels``).
 *
 * This interface was referenced by `JupyterOrchestrateDocuments`'s JSON-Schema
 * via the `definition` "LiveKernelDocument".
 */
export interface LiveKernelDocument {
  /**
   * The kernel's id in the Jupyter server's kernel API.
   */
  kernel_id: string;
}
/**
 * A ``progress`` message of the event stream (:class:`ProgressEvent` with ``id``).
 *
 * This interface was referenced by `JupyterOrchestrateDocuments`'s JSON-Schema
 * via the `definition` "ProgressStreamEvent".
 */
export interface ProgressStreamEvent {
  /**
   * Sequence number of the event (the SSE `id`): increases in publication order.
   */
  id: number;
  run_id: number;
  type: 'progress';
  task_key: string;
  attempt_number: number;
  cell: number;
  total?: number | null;
}
/**
 * A repair of a run: what it selected (``task_keys``), reused, and its parameter overrides.
 *
 * This interface was referenced by `JupyterOrchestrateDocuments`'s JSON-Schema
 * via the `definition` "RepairDocument".
 */
export interface RepairDocument {
  run_id: number;
  repair_number: number;
  repair_time: string;
  requested_task_keys: string[] | null;
  rerun_dependents: boolean;
  task_keys: string[];
  reused_task_keys: string[];
  parameters: {
    [k: string]: unknown;
  };
  /**
   * A resume: task key -> the input cell index it resumed from in its kept kernel (empty for a repair from the top).
   */
  resumed_from: {
    [k: string]: number;
  };
}
/**
 * What a repair would do (``dry_run``): ``task_keys`` re-execute, ``reused_task_keys`` keep their
 * results, with the repair's parameter overrides.
 *
 * This interface was referenced by `JupyterOrchestrateDocuments`'s JSON-Schema
 * via the `definition` "RepairPlanDocument".
 */
export interface RepairPlanDocument {
  run_id: number;
  task_keys: string[];
  reused_task_keys: string[];
  parameters: {
    [k: string]: unknown;
  };
}
/**
 * Body of ``POST runs/{run_id}/repair``.
 *
 * This interface was referenced by `JupyterOrchestrateDocuments`'s JSON-Schema
 * via the `definition` "RepairRequest".
 */
export interface RepairRequest {
  task_keys?: string[] | null;
  rerun_dependents?: boolean;
  parameters?: {
    [k: string]: unknown;
  };
  dry_run?: boolean;
  /**
   * Resume each failed task from its failed cell in its kept kernel.
   */
  resume?: boolean;
  /**
   * With resume: resume although cells before the failed one changed.
   */
  force?: boolean;
}
/**
 * A run with its task runs, attempts, errors, task values and repairs (``GET runs/{run_id}``, ``run``,
 * ``repair`` and ``show --json``).
 *
 * This interface was referenced by `JupyterOrchestrateDocuments`'s JSON-Schema
 * via the `definition` "RunDocument".
 */
export interface RunDocument {
  run_id: number;
  /**
   * The job's name.
   */
  job: string;
  /**
   * The job folder (absolute).
   */
  job_path: string;
  /**
   * The job folder relative to the server root (null from the CLI or when outside it).
   */
  job_id: string | null;
  status: RunStatus;
  status_reason: string | null;
  trigger: Trigger;
  trigger_time: string | null;
  trigger_reason: string | null;
  start_time: string;
  end_time: string | null;
  duration_seconds: number | null;
  /**
   * The job parameter values in effect.
   */
  parameters: {
    [k: string]: unknown;
  };
  repair_count: number;
  repairs: RepairDocument[];
  /**
   * A run started by a run-job task: the run of that task (trigger `run_job`).
   */
  parent_run_id: number | null;
  /**
   * A run started by a run-job task: its key.
   */
  parent_task_key: string | null;
  task_runs: TaskRunDocument[];
  /**
   * The runs this run's run-job tasks started, the latest per task (task_key, run_id, status).
   */
  child_runs: ChildRun[];
}
/**
 * One task run: its status, the last attempt's error, paths and task values, and every attempt.
 *
 * This interface was referenced by `JupyterOrchestrateDocuments`'s JSON-Schema
 * via the `definition` "TaskRunDocument".
 */
export interface TaskRunDocument {
  task_key: string;
  /**
   * The task's notebook, relative to the job folder; null for a condition task (its status_reason says what it compared and its outcome, its task value `outcome` holds the outcome).
   */
  notebook: string | null;
  depends_on: string[];
  status: TaskRunStatus;
  status_reason: string | null;
  attempt_count: number;
  duration_seconds: number | null;
  /**
   * The last attempt's executed notebook (absolute).
   */
  executed_notebook: string | null;
  /**
   * The last attempt's log (absolute).
   */
  log: string | null;
  /**
   * The last attempt's error.
   */
  error: AttemptError | null;
  task_values: {
    [k: string]: unknown;
  };
  /**
   * What validation warned about for this task when the run started (no parameters cell, no kernelspec ...).
   */
  warnings: string[];
  attempts: AttemptDocument[];
  /**
   * The last attempt's kernel while it is kept alive after failing in a cell.
   */
  kept_kernel: KeptKernelDocument | null;
  /**
   * An iteration of a for-each task: its index (from 0); null for a task run.
   */
  map_index: number | null;
  /**
   * An iteration of a for-each task: its element of the inputs.
   */
  input: {
    [k: string]: unknown;
  };
  /**
   * A for-each task run: its iterations in map_index order, each a task run keyed `<task_key>[<map_index>]` (empty until the task expands; always empty for an iteration).
   */
  iterations: TaskRunDocument[];
}
/**
 * ``GET runs`` and ``runs --json``: a page of runs newest first (highest run id first). Paging is by
 * keyset: pass ``next_before`` as ``before`` for the next page; pages never repeat or skip a run.
 *
 * This interface was referenced by `JupyterOrchestrateDocuments`'s JSON-Schema
 * via the `definition` "RunListDocument".
 */
export interface RunListDocument {
  runs: RunSummaryDocument[];
  /**
   * The `before` value of the next page (the last run id of this page); null on the last page.
   */
  next_before: number | null;
}
/**
 * A run in a listing: the run document without ``task_runs``, plus ``task_statuses`` and
 * ``task_duration_seconds`` (the matrix's cells).
 *
 * This interface was referenced by `JupyterOrchestrateDocuments`'s JSON-Schema
 * via the `definition` "RunSummaryDocument".
 */
export interface RunSummaryDocument {
  run_id: number;
  /**
   * The job's name.
   */
  job: string;
  /**
   * The job folder (absolute).
   */
  job_path: string;
  /**
   * The job folder relative to the server root (null from the CLI or when outside it).
   */
  job_id: string | null;
  status: RunStatus;
  status_reason: string | null;
  trigger: Trigger;
  trigger_time: string | null;
  trigger_reason: string | null;
  start_time: string;
  end_time: string | null;
  duration_seconds: number | null;
  /**
   * The job parameter values in effect.
   */
  parameters: {
    [k: string]: unknown;
  };
  repair_count: number;
  repairs: RepairDocument[];
  /**
   * A run started by a run-job task: the run of that task (trigger `run_job`).
   */
  parent_run_id: number | null;
  /**
   * A run started by a run-job task: its key.
   */
  parent_task_key: string | null;
  task_statuses: {
    [k: string]: TaskRunStatus;
  };
  /**
   * Each task run's duration in seconds (null while it has not finished or never started).
   */
  task_duration_seconds: {
    [k: string]: number | null;
  };
}
/**
 * A ``run_status`` message of the event stream (:class:`RunStatusEvent` with ``id``).
 *
 * This interface was referenced by `JupyterOrchestrateDocuments`'s JSON-Schema
 * via the `definition` "RunStatusStreamEvent".
 */
export interface RunStatusStreamEvent {
  /**
   * Sequence number of the event (the SSE `id`): increases in publication order.
   */
  id: number;
  run_id: number;
  type: 'run_status';
  status: RunStatus;
  reason?: string | null;
  job_name?: string | null;
}
/**
 * ``POST jobs/{job}/schedules/{name}/pause|resume``: the job's schedules after the change.
 *
 * This interface was referenced by `JupyterOrchestrateDocuments`'s JSON-Schema
 * via the `definition` "SchedulesDocument".
 */
export interface SchedulesDocument {
  schedules: ScheduleDocument[];
}
/**
 * Body of ``POST jobs/{job}/runs``.
 *
 * This interface was referenced by `JupyterOrchestrateDocuments`'s JSON-Schema
 * via the `definition` "StartRunRequest".
 */
export interface StartRunRequest {
  parameters?: {
    [k: string]: unknown;
  };
  max_parallel?: number | null;
}
/**
 * A ``task_status`` message of the event stream (:class:`TaskStatusEvent` with ``id``).
 *
 * This interface was referenced by `JupyterOrchestrateDocuments`'s JSON-Schema
 * via the `definition` "TaskStatusStreamEvent".
 */
export interface TaskStatusStreamEvent {
  /**
   * Sequence number of the event (the SSE `id`): increases in publication order.
   */
  id: number;
  run_id: number;
  type: 'task_status';
  task_key: string;
  status: TaskRunStatus;
  reason?: string | null;
  attempt_number?: number | null;
}
/**
 * Body of ``POST jobs/{job}/tasks/{task_key}/validate``: a task settings change to check, not to write.
 *
 * ``changes``: setting -> value as ``PUT jobs/{job}/tasks/{task_key}`` takes them (``null`` removes one);
 * ``notebook``: the notebook (relative to the job folder) when it is not yet a task; ``metadata``: its
 * ``metadata.orchestrate`` as open in the editor (``null``: not yet a task; left out: the file's).
 *
 * This interface was referenced by `JupyterOrchestrateDocuments`'s JSON-Schema
 * via the `definition` "TaskSettingsCheckRequest".
 */
export interface TaskSettingsCheckRequest {
  changes?: {
    [k: string]: unknown;
  };
  notebook?: string | null;
  metadata?: {
    [k: string]: unknown;
  } | null;
}
/**
 * ``POST jobs/{job}/tasks/{task_key}/validate``: a task settings change checked without writing it: the
 * notebook's ``metadata.orchestrate`` after the change (for an editor to set), and the job as validated
 * with it.
 *
 * This interface was referenced by `JupyterOrchestrateDocuments`'s JSON-Schema
 * via the `definition` "TaskSettingsDocument".
 */
export interface TaskSettingsDocument {
  task_key: string;
  /**
   * The task's notebook, relative to the job folder.
   */
  notebook: string;
  /**
   * The notebook's metadata.orchestrate after the change.
   */
  metadata: {
    [k: string]: unknown;
  };
  job: JobDocument;
}
/**
 * One task over the trends' runs. ``ran``: task runs whose notebook ran to an end (succeeded, failed or
 * timed out; upstream failures, skips and cancels are not the task's); ``failure_rate`` = (failed + timed
 * out) / ran, 0..1, None when none ran; ``p50``/``p90`` are of succeeded task runs' durations (all attempts
 * of the task run, retries included), None without one.
 *
 * This interface was referenced by `JupyterOrchestrateDocuments`'s JSON-Schema
 * via the `definition` "TaskTrendDocument".
 */
export interface TaskTrendDocument {
  task_key: string;
  /**
   * Task runs of this task in the trends' runs.
   */
  task_runs: number;
  ran: number;
  succeeded: number;
  /**
   * Failed or timed out.
   */
  failed: number;
  failure_rate: number | null;
  p50_duration_seconds: number | null;
  p90_duration_seconds: number | null;
  /**
   * At most 5, slowest (mean duration) first.
   */
  slowest_cells: CellTrendDocument[];
}
/**
 * One run of a job's trends: when it started, how it ended and how long it took (None while unfinished).
 *
 * This interface was referenced by `JupyterOrchestrateDocuments`'s JSON-Schema
 * via the `definition` "TrendRunDocument".
 */
export interface TrendRunDocument {
  run_id: number;
  start_time: string;
  status: RunStatus;
  trigger: Trigger;
  duration_seconds: number | null;
}
/**
 * ``GET jobs/{job}/trends?limit=N``: the job's last ``limit`` runs (1..500, default 50) oldest first, with
 * each task's duration percentiles, failure rate and slowest cells over them.
 *
 * This interface was referenced by `JupyterOrchestrateDocuments`'s JSON-Schema
 * via the `definition` "TrendsDocument".
 */
export interface TrendsDocument {
  /**
   * The job folder relative to the server root.
   */
  job_id: string;
  limit: number;
  /**
   * Oldest first (chart order).
   */
  runs: TrendRunDocument[];
  /**
   * In the order of the newest run's tasks.
   */
  tasks: TaskTrendDocument[];
}
