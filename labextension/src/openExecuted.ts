/**
 * Open an executed attempt notebook read-only with no kernel, titled by its run and scrolled to the failing
 * cell's error output (see ./executed for what and why).
 */
import { JupyterFrontEnd } from '@jupyterlab/application';
import { IDocumentManager } from '@jupyterlab/docmanager';
import { NotebookPanel } from '@jupyterlab/notebook';
import { Widget } from '@lumino/widgets';

import { clampCell, errorOutputIndex, executedTitle, IExecutedNotebook, NO_KERNEL } from './executed';

function nextFrame(): Promise<void> {
  return new Promise(resolve => requestAnimationFrame(() => resolve()));
}

/** Make every cell of `panel` read-only without writing `editable` into the cells' metadata. */
function readOnlyCells(panel: NotebookPanel): void {
  for (const cell of panel.content.widgets) {
    cell.syncEditable = false; // the view's state only: the model (and file) keep their metadata
    cell.readOnly = true;
  }
}

/**
 * Scroll `panel` to cell `index` and then so that its error output (else its last output, else the cell)
 * is in view: centred when it fits in the notebook's viewport, else its end (the error line) at the bottom.
 */
export async function revealCell(panel: NotebookPanel, index: number): Promise<void> {
  const notebook = panel.content;
  if (notebook.widgets.length === 0) {
    return;
  }
  const cellIndex = clampCell(index, notebook.widgets.length);
  notebook.activeCellIndex = cellIndex;
  await notebook.scrollToItem(cellIndex, 'center');
  const cell = notebook.widgets[cellIndex];
  await cell.ready;
  await nextFrame();
  let target: HTMLElement = cell.node;
  const area = (cell as unknown as { outputArea?: { widgets: ReadonlyArray<Widget> } }).outputArea;
  if (area && area.widgets.length > 0) {
    const outputs = (cell.model.toJSON() as { outputs?: { output_type?: string }[] }).outputs ?? [];
    const errorIndex = errorOutputIndex(outputs);
    target =
      area.widgets[errorIndex >= 0 && errorIndex < area.widgets.length ? errorIndex : area.widgets.length - 1].node;
  }
  const viewport = notebook.node.getBoundingClientRect();
  const box = target.getBoundingClientRect();
  target.scrollIntoView({ block: box.height <= viewport.height ? 'center' : 'end' });
}

/**
 * Open an executed notebook read-only with no kernel, titled and scrolled to its failing cell's error.
 *
 * @returns the notebook panel
 * @throws Error when the path cannot be opened as a notebook
 */
export async function openExecuted(
  app: JupyterFrontEnd,
  docManager: IDocumentManager,
  executed: IExecutedNotebook
): Promise<NotebookPanel> {
  const widget = docManager.openOrReveal(executed.path, 'Notebook', undefined, undefined, NO_KERNEL);
  if (!(widget instanceof NotebookPanel)) {
    widget?.close();
    throw new Error(`cannot open ${executed.path} as a notebook`);
  }
  const title = executedTitle(executed);
  // A DocumentWidget renames its file when its title's label changes (rename by editing the tab): this
  // label is a name for the tab only, so that handler is disconnected first.
  // (JupyterLab's private handler: if it is not found, the tab keeps the file name rather than risk a rename.)
  const renameOnTitle = (NotebookPanel.prototype as unknown as Record<string, unknown>)._onTitleChanged;
  if (
    widget.title.label === title ||
    (typeof renameOnTitle === 'function' && widget.title.changed.disconnect(renameOnTitle as () => void, widget))
  ) {
    widget.title.label = title;
  }
  widget.title.caption = `${title} (read-only record of the run): ${executed.path}`;
  widget.addClass('jo-executed-notebook');
  widget.node.dataset.orchestrateExecuted = title;
  await widget.context.ready;
  const model = widget.context.model;
  model.readOnly = true; // "Save" is disabled: the record of the run stays as it ran
  model.dirty = false; // loading may normalise the file (cell ids); nothing was edited
  readOnlyCells(widget);
  // cells added later (the windowed notebook renders lazily, a revert) are read-only too
  model.cells.changed.connect(() => readOnlyCells(widget));
  // A read-only model still takes structural edits (command mode's insert, cut, paste) and `context.save()`
  // would write them: any change is undone at once by reloading the record from disk.
  model.stateChanged.connect((_, change) => {
    if (change.name === 'dirty' && change.newValue === true && !widget.isDisposed) {
      void widget.context.revert();
    }
  });
  app.shell.activateById(widget.id);
  await widget.revealed;
  readOnlyCells(widget);
  if (executed.cellIndex !== null && executed.cellIndex !== undefined) {
    await revealCell(widget, executed.cellIndex);
  }
  return widget;
}
