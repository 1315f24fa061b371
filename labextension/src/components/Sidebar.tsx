/** The "Orchestrate" left sidebar: routes between the Jobs, Job and Run views (`Panel`), under a stale banner. */
import React from 'react';
import { ReactWidget, UseSignal } from '@jupyterlab/apputils';
import { Button, caretLeftIcon, listIcon, refreshIcon, ToolbarButtonComponent } from '@jupyterlab/ui-components';

import { IActions } from '../actions';
import { OrchestrateModel } from '../model';
import { AllRuns } from './AllRuns';
import { JobsList } from './JobsList';
import { JobView } from './JobView';
import { RunView } from './RunView';
import { Trends } from './Trends';

/**
 * The banner shown while the server cannot be reached (`error`: the model's `jobsError`): what the panel shows is
 * what was last loaded and may be out of date; Retry refreshes.
 */
export function StaleBanner(props: { error: string | null; onRetry: () => void }): JSX.Element | null {
  if (!props.error) {
    return null;
  }
  return (
    <div className="jo-banner jo-banner-error" role="alert" data-testid="jo-stale-banner">
      <div className="jo-banner-text">
        <b>Cannot reach the server</b>: {props.error}. What is shown may be out of date.
      </div>
      <Button small className="jp-mod-styled jp-mod-reject" data-testid="jo-retry" onClick={props.onRetry}>
        Retry
      </Button>
    </div>
  );
}

export function Panel(props: { model: OrchestrateModel; actions: IActions }): JSX.Element {
  const { model, actions } = props;
  const view = model.view;
  let title = 'Orchestrate: jobs';
  let body: JSX.Element;
  if (view.kind === 'job') {
    title = model.job(view.jobId)?.name ?? view.jobId;
    body = <JobView model={model} jobId={view.jobId} actions={actions} />;
  } else if (view.kind === 'trends') {
    title = `${model.job(view.jobId)?.name ?? view.jobId}: trends`;
    body = <Trends model={model} jobId={view.jobId} onOpenRun={runId => model.show({ kind: 'run', runId })} />;
  } else if (view.kind === 'runs') {
    title = 'Orchestrate: all runs';
    body = <AllRuns model={model} />;
  } else if (view.kind === 'run') {
    const run = model.runs.get(view.runId);
    title = run ? `Run ${run.run_id} of ${run.job}` : `Run ${view.runId}`;
    body = <RunView model={model} runId={view.runId} actions={actions} />;
  } else {
    body = <JobsList model={model} onRun={job => void actions.runJob(job)} />;
  }
  const back = () => {
    if (view.kind === 'run' && model.previous?.kind === 'runs') {
      model.show({ kind: 'runs' });
    } else if (view.kind === 'run') {
      const run = model.runs.get(view.runId);
      model.show(run?.job_id ? { kind: 'job', jobId: run.job_id } : { kind: 'jobs' });
    } else if (view.kind === 'trends') {
      model.show({ kind: 'job', jobId: view.jobId });
    } else {
      model.show({ kind: 'jobs' });
    }
  };
  return (
    <div className="jo-panel" data-view={view.kind} data-stale={model.jobsError ? 'true' : 'false'}>
      <div className="jo-header">
        {view.kind !== 'jobs' && <ToolbarButtonComponent icon={caretLeftIcon} tooltip="Back" onClick={back} />}
        <span className="jo-title" title={title}>
          {title}
        </span>
        {view.kind === 'jobs' && (
          <ToolbarButtonComponent
            icon={listIcon}
            label="All runs"
            tooltip="All runs of every job, with filters"
            dataset={{ testid: 'jo-all-runs-button' }}
            onClick={() => model.show({ kind: 'runs' })}
          />
        )}
        <ToolbarButtonComponent icon={refreshIcon} tooltip="Refresh" onClick={() => void model.refresh()} />
      </div>
      <StaleBanner error={model.jobsError} onRetry={() => void model.refresh()} />
      {body}
    </div>
  );
}

export class OrchestrateSidebar extends ReactWidget {
  constructor(
    readonly model: OrchestrateModel,
    private readonly actions: IActions
  ) {
    super();
    this.addClass('jo-sidebar');
  }

  render(): JSX.Element {
    return (
      <UseSignal signal={this.model.changed}>{() => <Panel model={this.model} actions={this.actions} />}</UseSignal>
    );
  }
}
