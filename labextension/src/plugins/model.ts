/** Provides the shared DS01 model (API client + live state) and applies the user's settings to it. */
import { JupyterFrontEnd, JupyterFrontEndPlugin } from '@jupyterlab/application';
import { ISettingRegistry } from '@jupyterlab/settingregistry';

import { DS01Client } from '../client';
import { DS01Model } from '../model';
import { IDS01Settings } from '../models/settings';
import { IDS01Model, PLUGIN_ID } from '../tokens';

export const modelPlugin: JupyterFrontEndPlugin<IDS01Model> = {
  id: `${PLUGIN_ID}:plugin`,
  description: 'The DS01 API client and live model, fed by the server events.',
  autoStart: true,
  provides: IDS01Model,
  optional: [ISettingRegistry],
  activate: (app: JupyterFrontEnd, registry: ISettingRegistry | null) => {
    const model = new DS01Model(new DS01Client(app.serviceManager.serverSettings));
    void model.start();
    if (registry) {
      registry
        .load(`${PLUGIN_ID}:plugin`)
        .then(settings => {
          const apply = () => model.setSettings(settings.composite as unknown as Partial<IDS01Settings>);
          apply();
          settings.changed.connect(apply);
        })
        .catch(error => console.warn('ds01: settings not loaded, using defaults', error));
    }
    return model;
  }
};
