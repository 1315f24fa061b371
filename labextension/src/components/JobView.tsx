/**
 * The Job view: header with the Run button, validation problems, the job's schedules, the DAG coloured by the
 * selected run, a selector of the recent runs, the run matrix and the tasks' settings. Data comes from the API and
 * is refetched (debounced) whenever the model changes, so live events update the view.
 */
import React, { useEffect, useState } from 'react';
import { Button, runIcon } from '@jupyterlab/ui-components';

import { IActions } from '../actions';
import {
  api,
  JobDocument,
  NotebookParameterDocument,
  ProblemDocument,
  RunDocument,
  RunSummaryDocument,
  TaskDocument
} from '../api';
import { isTerminal } from '../status';
import { OrchestrateModel } from '../model';
import { countOf, ErrorText, formatSeconds, iterationCounts, Limited, RunCell, StatusBadge } from './common';
import { Dag } from './Dag';
import { IMatrixRun, Matrix, matrixColumns, matrixTaskKeys } from './Matrix';
import { formatTime } from './RunView';
import { Schedules } from './Schedules';
import { formatValue, TaskDetail } from './TaskDetail';

/** How many recent runs the view shows (selector and matrix). */
export const RECENT_RUNS = 10;

/** `name = default: type` for a notebook parameter (`name: type` without a default). */
export function formatNotebookParameter(p: NotebookParameterDocument): string {
  const type = p.inferred_type ?? 'any';
  return p.default === null ? `${p.name}: ${type}` : `${p.name} = ${p.default}: ${type}`;
}

/** A validation problem as one line (the server's `text`, else path, field and message). */
export function problemText(problem: ProblemDocument): string {
  return problem.text ?? [problem.path, problem.field, problem.message].filter(Boolean).join(': ');
}

/** The run to show: the chosen one while it is listed, else the newest; null without runs. */
export function selectRunId(chosen: number | null, runIds: number[]): number | null {
  if (chosen !== null && runIds.includes(chosen)) {
    return chosen;
  }
  return runIds.length ? Math.max(...runIds) : null;
}

/** Each task's status in a run (full document or list result); null without a run. */
export function runTaskStatuses(run: IMatrixRun | null | undefined): Record<string, string> | null {
  if (!run) {
    return null;
  }
  if (run.task_runs) {
    return Object.fromEntries(run.task_runs.map(t => [t.task_key, t.status]));
  }
  return run.task_statuses ?? {};
}

/** The iteration counts of a run's for-each task runs (`iterationCounts`), by task key; {} without a full run. */
export function runIterationCounts(run: RunDocument | null | undefined): Record<string, string> {
  return Object.fromEntries(
    (run?.task_runs ?? [])
      .filter(t => (t.iterations ?? []).length > 0)
      .map(t => [t.task_key, iterationCounts(t.iterations.map(i => i.status))])
  );
}

function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** A counter bumped (at most every `delayMs`) when the model changes, to refetch what the view shows. */
function useModelTick(model: OrchestrateModel, delayMs = 500): number {
  const [tick, setTick] = useState(0);
  useEffect(() => {
    let timer = 0;
    const onChanged = () => {
      if (!timer) {
        timer = window.setTimeout(() => {
          timer = 0;
          setTick(t => t + 1);
        }, delayMs);
      }
    };
    model.changed.connect(onChanged);
    return () => {
      model.changed.disconnect(onChanged);
      window.clearTimeout(timer);
    };
  }, [model, delayMs]);
  return tick;
}

function retriesText(task: TaskDocument): string {
  if (!task.max_retries) {
    return 'none';
  }
  const interval = task.min_retry_interval_seconds ? `, ≥ ${task.min_retry_interval_seconds} s apart` : '';
  return `${task.max_retries}${interval}${task.retry_on_timeout ? ', also on timeout' : ''}`;
}

/** A task's settings: notebook, dependencies, run_if, kernel, retries, timeout and notebook parameters. */
function TaskSpec(props: { task: TaskDocument; selected: boolean; onSelect: (taskKey: string) => void }): JSX.Element {
  const { task } = props;
  const overrides = Object.entries(task.parameters ?? {});
  return (
    <div
      className={`jo-task-spec${props.selected ? ' jo-selected' : ''}`}
      data-testid="jo-task-spec"
      data-task-key={task.task_key}
    >
      <div className="jo-row jo-wrap">
        <button
          className="jo-link jo-task-key jo-ellipsis"
          title={task.task_key}
          onClick={() => props.onSelect(task.task_key)}
        >
          {task.task_key}
        </button>
        <span className="jo-muted jo-ellipsis" title={task.notebook_path ?? task.notebook ?? undefined}>
          {task.condition
            ? `condition ${JSON.stringify(task.condition.left)} ${task.condition.op} ${JSON.stringify(task.condition.right)}`
            : task.notebook}
        </span>
      </div>
      <dl className="jo-kv">
        <dt>depends on</dt>
        <dd>{task.depends_on.length ? task.depends_on.join(', ') : '–'}</dd>
        <dt>run if</dt>
        <dd>{task.run_if}</dd>
        <dt>kernel</dt>
        <dd>{task.kernel_name}</dd>
        <dt>retries</dt>
        <dd>{retriesText(task)}</dd>
        <dt>timeout</dt>
        <dd>{task.timeout_seconds === null ? 'none' : `${task.timeout_seconds} s`}</dd>
        {overrides.length > 0 && (
          <>
            <dt>parameters</dt>
            <dd>{overrides.map(([name, value]) => `${name}=${formatValue(value)}`).join(', ')}</dd>
          </>
        )}
      </dl>
      {task.notebook_parameters.length > 0 && (
        <ul className="jo-params" data-testid="jo-notebook-parameters">
          {task.notebook_parameters.map(p => (
            <li key={p.name} title={p.help || undefined}>
              <code>{formatNotebookParameter(p)}</code>
            </li>
          ))}
        </ul>
      )}
    </div>
  );
}

/** The recent runs as cells (oldest left), the selected one outlined, and a summary of the selected run. */
function RunSelector(props: {
  model: OrchestrateModel;
  runs: IMatrixRun[];
  selected: IMatrixRun | undefined;
  onSelect: (runId: number) => void;
}): JSX.Element {
  const { model, runs, selected } = props;
  if (runs.length === 0) {
    return <div className="jo-muted">No runs yet.</div>;
  }
  const duration = (selected as Partial<RunDocument> | undefined)?.duration_seconds;
  return (
    <div className="jo-run-selector" data-testid="jo-run-selector">
      <div className="jo-cells">
        {matrixColumns(runs).map(run => (
          <span
            key={run.run_id}
            className={`jo-run-option${run.run_id === selected?.run_id ? ' jo-selected' : ''}`}
            data-testid="jo-run-option"
          >
            <RunCell
              runId={run.run_id}
              status={run.status}
              title={`run ${run.run_id}: ${run.status}${run.start_time ? ` (${formatTime(run.start_time)})` : ''}`}
              onClick={() => props.onSelect(run.run_id)}
            />
          </span>
        ))}
      </div>
      {selected && (
        <div className="jo-row jo-wrap" data-testid="jo-selected-run" data-run-id={selected.run_id}>
          <span>Run {selected.run_id}</span>
          <StatusBadge status={selected.status} />
          <span className="jo-muted">
            {formatTime(selected.start_time)}
            {duration !== null && duration !== undefined ? ` · ${formatSeconds(duration)}` : ''}
          </span>
          <button
            className="jo-link"
            data-testid="jo-open-run"
            onClick={() => model.show({ kind: 'run', runId: selected.run_id })}
          >
            Open run {selected.run_id}
          </button>
        </div>
      )}
    </div>
  );
}

/** The Job view of `jobId` (state is reset when the job changes). */
export function JobView(props: { model: OrchestrateModel; jobId: string; actions: IActions }): JSX.Element {
  return <JobViewBody key={props.jobId} model={props.model} jobId={props.jobId} actions={props.actions} />;
}

function JobViewBody(props: { model: OrchestrateModel; jobId: string; actions: IActions }): JSX.Element {
  const { model, jobId, actions } = props;
  const tick = useModelTick(model);
  const [job, setJob] = useState<JobDocument | null>(null);
  const [jobError, setJobError] = useState<string | null>(null);
  const [runs, setRuns] = useState<RunSummaryDocument[] | null>(null);
  const [chosenRunId, setChosenRunId] = useState<number | null>(null);
  const [fullRun, setFullRun] = useState<RunDocument | null>(null);
  const [selectedTask, setSelectedTask] = useState<string | null>(null);

  useEffect(() => {
    let live = true;
    api.getJob(jobId).then(
      result => {
        if (live) {
          setJob(result);
          setJobError(null);
        }
      },
      error => {
        if (live) {
          setJobError(errorMessage(error));
        }
      }
    );
    api.listRuns({ job: jobId, limit: RECENT_RUNS }).then(
      result => {
        if (live) {
          setRuns(result.runs);
        }
      },
      () => undefined // the job's recent_runs stand in
    );
    return () => {
      live = false;
    };
  }, [jobId, tick]);

  const shownJob = job ?? model.job(jobId) ?? null;
  const runList: IMatrixRun[] = runs ?? shownJob?.recent_runs ?? [];
  const selectedRunId = selectRunId(
    chosenRunId,
    runList.map(r => r.run_id)
  );
  const summary = runList.find(r => r.run_id === selectedRunId);
  // refetch the full run when its listed state changes, and on every model change while it is active
  const version = summary
    ? JSON.stringify([summary.status, (summary as Partial<RunSummaryDocument>).repair_count, summary.task_statuses])
    : '';
  const activeTick = summary && !isTerminal(summary.status) ? tick : 0;
  useEffect(() => {
    if (selectedRunId === null) {
      return;
    }
    let live = true;
    api.getRun(selectedRunId).then(
      result => {
        if (live) {
          setFullRun(result);
        }
      },
      () => undefined
    );
    return () => {
      live = false;
    };
  }, [selectedRunId, version, activeTick]);

  if (!shownJob) {
    return (
      <div className="jo-body" data-testid="jo-job-view" data-job-id={jobId}>
        {jobError ? (
          <ErrorText error={`Cannot load job ${jobId}: ${jobError}`} />
        ) : (
          <div className="jo-muted">Loading…</div>
        )}
      </div>
    );
  }
  const run = fullRun && fullRun.run_id === selectedRunId ? fullRun : null;
  const selectedRun: IMatrixRun | undefined = run ?? summary;
  const matrixRuns = runList.map(r => (run && r.run_id === run.run_id ? run : r));
  const tasks = shownJob.tasks ?? [];
  const taskKeys = tasks.map(t => t.task_key);
  const selectTask = (key: string) => setSelectedTask(key === selectedTask ? null : key);
  const selectedTaskRun = run?.task_runs.find(t => t.task_key === selectedTask);
  const selectedSpec = tasks.find(t => t.task_key === selectedTask);
  return (
    <div className="jo-body jo-job-view" data-testid="jo-job-view" data-job-id={jobId}>
      <div className="jo-row">
        <span className="jo-job-name jo-ellipsis" title={shownJob.name}>
          {shownJob.name}
        </span>
        <Button
          small
          className="jp-mod-styled jp-mod-accept"
          data-testid="jo-run-job"
          disabled={!shownJob.valid}
          title={shownJob.valid ? `Run ${shownJob.name} with parameters` : 'Fix the problems first'}
          onClick={() => void actions.runJob(shownJob)}
        >
          <runIcon.react tag="span" className="jo-button-icon" />
          Run
        </Button>
        <Button
          small
          minimal
          data-testid="jo-open-trends"
          title={`Trends of ${shownJob.name}: run durations, task p50/p90 and failure rate, slowest cells`}
          onClick={() => model.show({ kind: 'trends', jobId })}
        >
          Trends
        </Button>
      </div>
      {shownJob.description && (
        <div className="jo-description" data-testid="jo-job-description">
          {shownJob.description}
        </div>
      )}
      <div className="jo-muted jo-path" title={shownJob.job_id}>
        {shownJob.job_id} · {countOf(tasks.length, 'task')}
        {shownJob.max_parallel_tasks ? ` · up to ${shownJob.max_parallel_tasks} in parallel` : ''}
      </div>
      {shownJob.problems.length > 0 && (
        <div className="jo-problems" data-testid="jo-problems">
          <div className={shownJob.valid ? 'jo-muted' : 'jo-error-text'}>
            {shownJob.valid ? 'The job runs; tasks with errors fail at once:' : 'This job is invalid:'}
          </div>
          <ul>
            {shownJob.problems.map((problem, i) => (
              <li
                key={i}
                className={problem.severity === 'warning' ? 'jo-warning' : 'jo-error-text'}
                data-severity={problem.severity ?? 'error'}
              >
                {problem.severity === 'warning' ? 'warning: ' : ''}
                {problemText(problem)}
              </li>
            ))}
          </ul>
        </div>
      )}
      <Schedules
        model={model}
        jobId={jobId}
        schedules={shownJob.schedules}
        maxConcurrentRuns={shownJob.max_concurrent_runs}
        queue={shownJob.queue}
        onSchedulesChanged={schedules => setJob(current => (current ? { ...current, schedules } : current))}
      />
      <div>
        <div className="jo-section-title">Runs</div>
        <RunSelector model={model} runs={runList} selected={selectedRun} onSelect={setChosenRunId} />
      </div>
      {tasks.length > 0 && (
        <div>
          <div className="jo-section-title">Graph</div>
          <Dag
            tasks={tasks}
            edges={shownJob.edges}
            statuses={runTaskStatuses(selectedRun)}
            counts={runIterationCounts(run)}
            selected={selectedTask}
            onSelect={selectTask}
          />
        </div>
      )}
      {selectedTask !== null && (
        <div className="jo-selected-task" data-testid="jo-selected-task" data-task-key={selectedTask}>
          {selectedTaskRun && run ? (
            <TaskDetail
              taskRun={selectedTaskRun}
              progress={model.progress.get(`${run.run_id}/${selectedTaskRun.task_key}`)}
              actions={actions}
              run={run}
            />
          ) : selectedSpec ? (
            <TaskSpec task={selectedSpec} selected={false} onSelect={selectTask} />
          ) : null}
        </div>
      )}
      {runList.length > 0 && (
        <div>
          <div className="jo-section-title">Matrix</div>
          <Matrix
            taskKeys={matrixTaskKeys(taskKeys, matrixRuns)}
            runs={matrixRuns}
            selectedRunId={selectedRunId}
            onOpenRun={runId => model.show({ kind: 'run', runId })}
          />
        </div>
      )}
      {tasks.length > 0 && (
        <div data-testid="jo-task-list">
          <div className="jo-section-title">Tasks</div>
          <Limited
            items={tasks}
            keep={task => task.task_key === selectedTask}
            render={task => (
              <TaskSpec
                key={task.task_key}
                task={task}
                selected={task.task_key === selectedTask}
                onSelect={selectTask}
              />
            )}
          />
        </div>
      )}
    </div>
  );
}
