/** The Job view (placeholder until the DAG, matrix and parameters dialog land). */
import React from 'react';
import { IActions } from '../actions';
import { OrchestrateModel } from '../model';

export function JobView(props: { model: OrchestrateModel; jobId: string; actions: IActions }): JSX.Element {
  const job = props.model.job(props.jobId);
  return <div className="jo-body">{job ? job.name : 'Loading…'}</div>;
}
