/** The Run view (placeholder until the timeline, task details and repair land). */
import React from 'react';
import { IActions } from '../actions';
import { OrchestrateModel } from '../model';

export function RunView(props: { model: OrchestrateModel; runId: number; actions: IActions }): JSX.Element {
  const run = props.model.runs.get(props.runId);
  return <div className="jo-body">{run ? run.status : 'Loading…'}</div>;
}
