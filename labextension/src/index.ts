/**
 * jupyter-orchestrate JupyterLab extension: the "Orchestrate" sidebar, commands, notifications and the
 * notebook toolbar's task settings. Talks to the server only through ./api.
 */
import { ILayoutRestorer, IRouter, JupyterFrontEnd, JupyterFrontEndPlugin } from '@jupyterlab/application';
import {
  CommandToolbarButton,
  ICommandPalette,
  InputDialog,
  Notification,
  showErrorMessage
} from '@jupyterlab/apputils';
import { IDocumentManager } from '@jupyterlab/docmanager';
import { INotebookTracker, NotebookPanel } from '@jupyterlab/notebook';
import { IStateDB } from '@jupyterlab/statedb';
import { buildIcon, LabIcon, launchIcon, runIcon, tagIcon } from '@jupyterlab/ui-components';

import { IActions } from './actions';
import { api, JobDocument, RunDocument } from './api';
import { OrchestrateSidebar } from './components/Sidebar';
import { repairDialog, runDialog } from './dialogs';
import type { IExecutedNotebook } from './executed';
import { openExecuted } from './openExecuted';
import { OrchestrateModel } from './model';
import { setupRestore } from './restore';
import { confirmCancelRun, RunNotifications } from './notifications';
import { editTaskSettings } from './taskSettings';

const PLUGIN_ID = 'jupyter-orchestrate:plugin';

export const orchestrateIcon = new LabIcon({
  name: 'jupyter-orchestrate:icon',
  svgstr:
    '<svg xmlns="http://www.w3.org/2000/svg" width="16" viewBox="0 0 24 24"><g class="jp-icon3" fill="#616161">' +
    '<rect x="2" y="3" width="7" height="5" rx="1"/><rect x="15" y="3" width="7" height="5" rx="1"/>' +
    '<rect x="8.5" y="16" width="7" height="5" rx="1"/><path d="M5.5 8v3h13V8h-1.5v1.5H7V8zM11.25 11h1.5v5h-1.5z"/></g></svg>'
});

export const CommandIDs = {
  open: 'jupyter-orchestrate:open',
  runJob: 'jupyter-orchestrate:run-job',
  repairLastFailed: 'jupyter-orchestrate:repair-last-failed',
  openRun: 'jupyter-orchestrate:open-run',
  tagParameters: 'jupyter-orchestrate:tag-parameters',
  taskSettings: 'jupyter-orchestrate:task-settings'
} as const;

/** Open a notebook and scroll it to a cell once it is ready. */
async function openAt(
  app: JupyterFrontEnd,
  docManager: IDocumentManager,
  path: string,
  cellIndex?: number | null
): Promise<void> {
  const widget = docManager.openOrReveal(path);
  if (!widget) {
    throw new Error(`cannot open ${path}`);
  }
  await widget.context.ready;
  app.shell.activateById(widget.id);
  if (widget instanceof NotebookPanel && cellIndex !== null && cellIndex !== undefined) {
    await widget.revealed;
    const notebook = widget.content;
    const index = Math.max(0, Math.min(cellIndex, notebook.widgets.length - 1));
    notebook.activeCellIndex = index;
    await notebook.scrollToItem(index, 'center');
  }
}

function message(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

const plugin: JupyterFrontEndPlugin<void> = {
  id: PLUGIN_ID,
  description: 'Run, watch and repair notebook jobs (DAGs of papermill tasks) from a JupyterLab sidebar.',
  autoStart: true,
  requires: [IDocumentManager],
  optional: [ILayoutRestorer, ICommandPalette, INotebookTracker, IStateDB, IRouter],
  activate: (
    app: JupyterFrontEnd,
    docManager: IDocumentManager,
    restorer: ILayoutRestorer | null,
    palette: ICommandPalette | null,
    notebooks: INotebookTracker | null,
    state: IStateDB | null,
    router: IRouter | null
  ) => {
    const model = new OrchestrateModel({ events: app.serviceManager.events });
    const notifications = new RunNotifications();

    const actions: IActions = {
      runJob: async (job: JobDocument) => {
        try {
          const full = job.tasks ? job : await api.getJob(job.job_id);
          // the dialog stays open on a refused value; it closes once the run started
          await runDialog(full, async parameters => {
            const run = await model.startRun(job.job_id, parameters);
            model.show({ kind: 'run', runId: run.run_id });
          });
        } catch (error) {
          await showErrorMessage('Cannot start the run', message(error));
        }
      },
      repairRun: async (run: RunDocument, taskKeys?: string[]) => {
        try {
          const plan = await api.planRepair(run.run_id, { task_keys: taskKeys ?? null });
          const job = run.job_id ? await api.getJob(run.job_id) : undefined;
          await repairDialog(
            run,
            plan,
            job,
            keys => api.planRepair(run.run_id, { task_keys: keys }),
            async request => {
              await model.repair(run.run_id, request);
              notifications.dismiss(run.run_id); // the earlier "failed" no longer holds
              model.show({ kind: 'run', runId: run.run_id });
            }
          );
        } catch (error) {
          await showErrorMessage('Cannot repair the run', message(error));
        }
      },
      cancelRun: async (runId: number) => {
        try {
          if (!(await confirmCancelRun(runId, model.runs.get(runId)?.job))) {
            return;
          }
          await model.cancel(runId);
        } catch (error) {
          await showErrorMessage('Cannot cancel the run', message(error));
        }
      },
      openNotebook: async (path: string, cellIndex?: number | null) => {
        try {
          await openAt(app, docManager, path, cellIndex);
        } catch (error) {
          await showErrorMessage('Cannot open the notebook', message(error));
        }
      },
      openExecuted: async (executed: IExecutedNotebook) => {
        try {
          await openExecuted(app, docManager, executed);
        } catch (error) {
          await showErrorMessage('Cannot open the executed notebook', message(error));
        }
      },
      debugKernel: async (runId: number, taskKey: string) => {
        try {
          const { kernel_id } = await api.liveKernel(runId, taskKey);
          await app.commands.execute('console:create', {
            kernelPreference: { id: kernel_id },
            name: `${taskKey} (run ${runId})`,
            activate: true
          });
        } catch (error) {
          await showErrorMessage('Cannot open the live kernel', message(error));
        }
      },
      resumeTask: async (runId: number, taskKey: string) => {
        try {
          await model.repair(runId, { task_keys: [taskKey], resume: true });
          notifications.dismiss(runId); // the earlier "failed" no longer holds
          model.show({ kind: 'run', runId });
        } catch (error) {
          await showErrorMessage('Cannot resume the task', message(error));
        }
      }
    };

    const sidebar = new OrchestrateSidebar(model, actions);
    sidebar.id = 'jupyter-orchestrate-sidebar';
    sidebar.title.icon = orchestrateIcon;
    sidebar.title.caption = 'Orchestrate: notebook jobs';
    app.shell.add(sidebar, 'left', { rank: 650 });
    if (restorer) {
      restorer.add(sidebar, 'jupyter-orchestrate-sidebar');
    }
    setupRestore({ app, model, sidebarId: sidebar.id, state, router });
    void model.refresh();

    model.runFinished.connect((_, run) =>
      notifications.finished(run, () => {
        app.shell.activateById(sidebar.id);
        model.show({ kind: 'run', runId: run.run_id });
      })
    );

    app.commands.addCommand(CommandIDs.open, {
      label: 'Open Orchestrate Panel',
      icon: orchestrateIcon,
      execute: () => app.shell.activateById(sidebar.id)
    });
    app.commands.addCommand(CommandIDs.openRun, {
      label: args => `Open Run ${args.runId ?? ''}`,
      icon: launchIcon,
      execute: args => {
        app.shell.activateById(sidebar.id);
        model.show({ kind: 'run', runId: Number(args.runId) });
      }
    });
    app.commands.addCommand(CommandIDs.runJob, {
      label: 'Run Notebook Job…',
      icon: runIcon,
      execute: async args => {
        const jobs = (await api.listJobs()).filter(j => j.valid);
        let jobId = args.jobId as string | undefined;
        if (!jobId) {
          if (jobs.length === 0) {
            await showErrorMessage('No jobs', 'No valid job was found under the server root.');
            return;
          }
          const choice = await InputDialog.getItem({ title: 'Run which job?', items: jobs.map(j => j.job_id) });
          if (!choice.button.accept || !choice.value) {
            return;
          }
          jobId = choice.value;
        }
        const job = jobs.find(j => j.job_id === jobId) ?? (await api.getJob(jobId));
        app.shell.activateById(sidebar.id);
        await actions.runJob(job);
      }
    });
    app.commands.addCommand(CommandIDs.repairLastFailed, {
      label: 'Repair Last Failed Run',
      icon: buildIcon,
      execute: async () => {
        const { runs } = await api.listRuns({ status: 'failed', limit: 1 });
        if (runs.length === 0) {
          Notification.info('No failed run to repair.', { autoClose: 4000 });
          return;
        }
        app.shell.activateById(sidebar.id);
        await actions.repairRun(await api.getRun(runs[0].run_id));
      }
    });
    app.commands.addCommand(CommandIDs.tagParameters, {
      label: 'Tag Cell as Parameters',
      icon: tagIcon,
      isEnabled: () => !!notebooks?.activeCell,
      execute: () => {
        const cell = notebooks?.activeCell;
        if (!cell) {
          return;
        }
        const tags = (cell.model.getMetadata('tags') as string[] | undefined) ?? [];
        if (!tags.includes('parameters')) {
          cell.model.setMetadata('tags', [...tags, 'parameters']);
        }
      }
    });
    app.commands.addCommand(CommandIDs.taskSettings, {
      label: 'Task Settings…',
      caption: "Edit this notebook's task settings (depends_on, kernel, retries, timeout, run_if)",
      icon: orchestrateIcon,
      isEnabled: () => !!notebooks?.currentWidget,
      execute: async () => {
        const panel = notebooks?.currentWidget;
        if (!panel) {
          return;
        }
        try {
          await app.serviceManager.kernelspecs.ready;
          const kernels = Object.keys(app.serviceManager.kernelspecs.specs?.kernelspecs ?? {});
          await editTaskSettings(panel, kernels, () => model.refresh());
        } catch (error) {
          await showErrorMessage('Task settings', message(error));
        }
      }
    });

    if (palette) {
      const category = 'Orchestrate';
      for (const command of [
        CommandIDs.open,
        CommandIDs.runJob,
        CommandIDs.repairLastFailed,
        CommandIDs.tagParameters,
        CommandIDs.taskSettings
      ]) {
        palette.addItem({ command, category });
      }
    }
    if (notebooks) {
      notebooks.widgetAdded.connect((_, panel) => {
        panel.toolbar.insertAfter(
          'cellType',
          'orchestrate-task-settings',
          new CommandToolbarButton({
            commands: app.commands,
            id: CommandIDs.taskSettings,
            label: 'Task settings'
          })
        );
      });
    }
  }
};

export default plugin;
