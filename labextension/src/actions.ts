/** What views can ask the application to do (implemented in index.ts with JupyterLab services). */
import { JobDocument, RunDocument } from './api';
import type { IExecutedNotebook } from './executed';

export interface IActions {
  /** Open the "Run with parameters" dialog for a job, then start the run and show it. */
  runJob(job: JobDocument): Promise<void>;
  /** Open the dry-run plan dialog for a run, then repair it. */
  repairRun(run: RunDocument, taskKeys?: string[]): Promise<void>;
  /** Cancel a running run. */
  cancelRun(runId: number): Promise<void>;
  /** Open a notebook (path relative to the server root), e.g. a task's source, scrolled to a cell index. */
  openNotebook(path: string, cellIndex?: number | null): Promise<void>;
  /** Open an attempt's executed notebook read-only with no kernel, titled by its run, at its failing cell. */
  openExecuted(executed: IExecutedNotebook): Promise<void>;
  /** "Debug in live kernel": register the task's kept kernel with the server and open a console on it. */
  debugKernel(runId: number, taskKey: string): Promise<void>;
  /** "Resume from cell N": repair the task from its failed cell in its kept kernel, then show the run. */
  resumeTask(runId: number, taskKey: string): Promise<void>;
}
