/**
 * collab-kernels-labextension: what the stock JupyterLab collaboration frontend cannot show
 * of a collab_kernels server.
 *
 * - input() prompts of server-side runs, on the cell, for everyone allowed to answer;
 * - view only: viewers' notebooks, cells and text editors are read-only, with a mark;
 * - the run queue of each notebook (who, since when) with cancel and interrupt;
 * - notifications when a long run ends, when a save fails, when a file was reloaded;
 * - its settings in JupyterLab's settings registry.
 *
 * It reads the server's own data: the document's `execution` root map (written by the
 * server into the Y document), `GET /api/me?permissions=`, `GET /api/kernels/{id}/requests`
 * and the server's event bus; it answers prompts with `POST /api/kernels/{id}/input`.
 *
 * Files: `companion.ts` (the application: permissions, settings, server events),
 * `notebook.ts` (one notebook), `widgets.ts` (prompts, run queue, view-only mark),
 * `server.ts` (REST calls), `settings.ts`, `logic.ts` (the pure parts, unit-tested).
 */
import { JupyterFrontEnd, JupyterFrontEndPlugin } from '@jupyterlab/application';
import { Notification } from '@jupyterlab/apputils';
import { IEditorTracker } from '@jupyterlab/fileeditor';
import { INotebookTracker } from '@jupyterlab/notebook';
import { ServerConnection } from '@jupyterlab/services';
import { ISettingRegistry } from '@jupyterlab/settingregistry';

import { canEdit, canExecute, executeRefusal, isExecutePost } from './logic';
import { DEFAULTS, PLUGIN_ID, Settings } from './settings';
import { fetchPermissions } from './server';
import { Companion } from './companion';

/**
 * The stock server-side executor POSTs .../execute and ignores a refusal (the cell just goes
 * back to idle). Watch those answers (ServerConnection is shared with the docprovider) and
 * say why a cell was not run.
 */
function watchExecuteRefusals(app: JupyterFrontEnd): void {
  const connection = ServerConnection as any;
  const original = connection.makeRequest as typeof ServerConnection.makeRequest;
  connection.makeRequest = async (url: string, init: RequestInit, settings: ServerConnection.ISettings) => {
    const response = await original(url, init, settings);
    if (!response.ok && isExecutePost(url, init && init.method)) {
      void response
        .clone()
        .json()
        .catch(() => ({}))
        .then((body: any) => {
          const refusal = executeRefusal(response.status, (body && (body.message || body.reason)) || '');
          const actions = refusal.chooseKernel
            ? [{ label: 'Choose a kernel', callback: () => void app.commands.execute('notebook:change-kernel') }]
            : [];
          Notification.error(refusal.text, { autoClose: 15000, actions });
        });
    }
    return response;
  };
}

const plugin: JupyterFrontEndPlugin<void> = {
  id: PLUGIN_ID,
  description: 'collab_kernels companion: input() prompts, view-only mode, run queue and notifications.',
  autoStart: true,
  requires: [INotebookTracker],
  optional: [IEditorTracker, ISettingRegistry],
  activate: async (
    app: JupyterFrontEnd,
    notebooks: INotebookTracker,
    editors: IEditorTracker | null,
    settingRegistry: ISettingRegistry | null
  ) => {
    watchExecuteRefusals(app);
    const companion = new Companion(app, editors);
    window.addEventListener('keydown', event => companion.guardKeys(event), true);
    const permissions = fetchPermissions();
    notebooks.forEach(panel => void permissions.then(() => companion.addNotebook(panel)));
    notebooks.widgetAdded.connect((_, panel) => {
      void permissions.then(() => companion.addNotebook(panel));
    });
    editors?.widgetAdded.connect((_, widget) => {
      void permissions.then(() => companion.applyEditorViewOnly(widget));
    });
    companion.permissions = await permissions;
    document.body.dataset.ckRights = canEdit(companion.permissions)
      ? canExecute(companion.permissions)
        ? 'run'
        : 'edit'
      : 'view';
    app.serviceManager.events.stream.connect((_, event) => companion.onServerEvent(event));
    companion.watchDialogs();
    if (settingRegistry) {
      try {
        const settings = await settingRegistry.load(PLUGIN_ID);
        const read = () => {
          companion.settings = { ...DEFAULTS, ...(settings.composite as Partial<Settings>) };
          companion.applySettings();
        };
        settings.changed.connect(read);
        read();
      } catch (err) {
        console.warn('collab_kernels: settings not loaded, using the defaults', err);
        companion.applySettings();
      }
    } else {
      companion.applySettings();
    }
    console.debug('collab_kernels companion extension is active');
  }
};

export default plugin;
