/** The Jobs view: every job under the root with its recent runs as coloured cells and a Run button. */
import React from 'react';
import { runIcon, ToolbarButtonComponent } from '@jupyterlab/ui-components';

import { JobDocument } from '../api';
import { OrchestrateModel } from '../model';
import { countOf, ErrorText, RunCell } from './common';

export function EmptyJobs(): JSX.Element {
  return (
    <div className="jo-empty" data-testid="jo-empty">
      <p>
        <b>No jobs found under the server root.</b>
      </p>
      <p>
        A job is a folder of notebooks. Make a notebook a task by adding <code>orchestrate</code> to its notebook
        metadata (Property Inspector → Advanced tools → Notebook metadata), or use the <i>Task settings</i> button in
        the notebook toolbar. Tag a cell <code>parameters</code> to declare its inputs.
      </p>
      <p>For example, a folder with two notebooks is a job of two tasks, the second one running after the first:</p>
      <ul className="jo-example" data-testid="jo-empty-example">
        <li>
          <code>sales/extract.ipynb</code>: <code>{'"orchestrate": {}'}</code>
        </li>
        <li>
          <code>sales/report.ipynb</code>: <code>{'"orchestrate": {"depends_on": ["extract"]}'}</code>
        </li>
      </ul>
      <p>
        An optional <code>job.yaml</code> in the folder sets the job name, parameters and defaults.
      </p>
    </div>
  );
}

export function JobsList(props: { model: OrchestrateModel; onRun: (job: JobDocument) => void }): JSX.Element {
  const { model } = props;
  if (model.jobs === null) {
    // the panel's banner says why (StaleBanner in Sidebar.tsx)
    return model.jobsError ? (
      <div className="jo-body jo-muted" data-testid="jo-jobs-unavailable">
        No jobs loaded.
      </div>
    ) : (
      <div className="jo-muted">Loading jobs…</div>
    );
  }
  if (model.jobs.length === 0) {
    return <EmptyJobs />;
  }
  return (
    <div className="jo-body" data-testid="jo-jobs">
      {model.jobs.map(job => (
        <div
          key={job.job_id}
          className="jo-job"
          data-job-id={job.job_id}
          onClick={() => model.show({ kind: 'job', jobId: job.job_id })}
        >
          <div className="jo-row">
            <span className="jo-job-name jo-ellipsis" title={job.name}>
              {job.name}
            </span>
            <span className="jo-run-button-wrap" onClick={event => event.stopPropagation()}>
              <ToolbarButtonComponent
                className="jo-run-button"
                icon={runIcon}
                label="Run"
                tooltip={`Run ${job.name}`}
                disabledTooltip="Fix the problems first"
                enabled={job.valid}
                onClick={() => job.valid && props.onRun(job)}
              />
            </span>
          </div>
          <div className="jo-muted jo-path" title={job.job_id}>
            {job.job_id} · {countOf(job.tasks?.length ?? 0, 'task')}
          </div>
          {!job.valid && (
            <ErrorText error={`${countOf(job.problems.length, 'problem')}: ${job.problems[0]?.text ?? ''}`} />
          )}
          <div className="jo-cells">
            {[...job.recent_runs].reverse().map(run => (
              <RunCell
                key={run.run_id}
                runId={run.run_id}
                status={run.status}
                onClick={(event?: React.MouseEvent) => {
                  event?.stopPropagation(); // the card's click opens the job
                  model.show({ kind: 'run', runId: run.run_id });
                }}
              />
            ))}
          </div>
        </div>
      ))}
    </div>
  );
}
