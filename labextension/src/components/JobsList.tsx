/** The Jobs view: every job under the root with its recent runs as coloured cells and a Run button. */
import React from 'react';
import { Button } from '@jupyterlab/ui-components';

import { JobDocument } from '../api';
import { OrchestrateModel } from '../model';
import { ErrorText, RunCell } from './common';

export function EmptyJobs(): JSX.Element {
  return (
    <div className="jo-empty" data-testid="jo-empty">
      <p>
        <b>No jobs found under the server root.</b>
      </p>
      <p>
        A job is a folder of notebooks. Make a notebook a task by adding <code>orchestrate</code> to its notebook
        metadata (Property Inspector → Advanced tools → Notebook metadata), for example{' '}
        <code>{'"orchestrate": {"depends_on": ["bronze"]}'}</code>, or use the <i>Task settings</i> button in the
        notebook toolbar. Tag a cell <code>parameters</code> to declare its inputs.
      </p>
      <p>
        An optional <code>job.yaml</code> in the folder sets the job name, parameters and defaults.
      </p>
    </div>
  );
}

export function JobsList(props: { model: OrchestrateModel; onRun: (job: JobDocument) => void }): JSX.Element {
  const { model } = props;
  if (model.jobs === null) {
    return model.jobsError ? (
      <ErrorText error={`Cannot load jobs: ${model.jobsError}`} />
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
            <span className="jo-job-name" title={job.job_id}>
              {job.name}
            </span>
            <Button
              small
              minimal
              title={job.valid ? `Run ${job.name}` : 'Fix the problems first'}
              disabled={!job.valid}
              className="jo-run-button"
              onClick={(event: React.MouseEvent) => {
                event.stopPropagation();
                props.onRun(job);
              }}
            >
              Run
            </Button>
          </div>
          <div className="jo-muted">
            {job.job_id} · {job.tasks?.length ?? 0} tasks
          </div>
          {!job.valid && <ErrorText error={`${job.problems.length} problem(s): ${job.problems[0]?.text ?? ''}`} />}
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
