/**
 * The DS01 side panel: a ReactWidget over the live model, re-rendered when it
 * changes. While visible it refreshes GPUs and limits on the settings' interval;
 * hidden, it asks for nothing.
 */
import { ReactWidget, UseSignal } from '@jupyterlab/apputils';
import { SidePanel } from '@jupyterlab/ui-components';
import { CommandRegistry } from '@lumino/commands';
import { Message } from '@lumino/messaging';
import * as React from 'react';

import { DS01Panel } from './components/DS01Panel';
import { IDS01Model } from './tokens';

class DS01View extends ReactWidget {
  constructor(
    private model: IDS01Model,
    private commands: CommandRegistry
  ) {
    super();
    this.addClass('jp-ds01-panel');
  }

  render(): JSX.Element {
    // Resolves with what the command returned (a cleanup's result), so a view can show the change.
    const execute = (command: string, args: { project?: string; path?: string } = {}): Promise<unknown> =>
      this.commands.execute(command, args).catch(error => console.warn('ds01:', command, error));
    return (
      <UseSignal signal={this.model.changed}>{() => <DS01Panel model={this.model} execute={execute} />}</UseSignal>
    );
  }
}

export class DS01Sidebar extends SidePanel {
  private timer: ReturnType<typeof setInterval> | null = null;

  constructor(
    private model: IDS01Model,
    commands: CommandRegistry
  ) {
    super();
    this.id = 'ds01-sidebar';
    this.addClass('jp-ds01-sidebar');
    this.title.caption = 'DS01 projects and GPUs';
    this.node.setAttribute('data-test-id', 'ds01-sidebar');
    this.node.setAttribute('role', 'region');
    this.node.setAttribute('aria-label', 'DS01 projects and GPUs');
    this.addWidget(new DS01View(model, commands));
    model.changed.connect(this.schedule, this);
  }

  protected onAfterShow(msg: Message): void {
    super.onAfterShow(msg);
    void this.model.refreshResources();
    // Findings of projects the server's scans flagged, so the panel shows what is at risk.
    for (const [project, count] of Object.entries(this.model.state.atRisk)) {
      if (count > 0 && !this.model.state.audits[project]) {
        void this.model.loadAudit(project);
      }
    }
    this.schedule();
  }

  protected onAfterHide(msg: Message): void {
    super.onAfterHide(msg);
    this.schedule();
  }

  /** Refresh GPUs on the interval only while visible and only when there are GPUs to watch. */
  private schedule(): void {
    const seconds = this.model.state.settings.gpuRefreshSeconds;
    const wanted = this.isVisible && seconds > 0 && !!this.model.state.gpus && this.model.state.gpus.gpus.length > 0;
    if (wanted && !this.timer) {
      this.timer = setInterval(() => void this.model.refreshResources(), seconds * 1000);
    } else if (!wanted && this.timer) {
      clearInterval(this.timer);
      this.timer = null;
    }
  }

  dispose(): void {
    if (this.timer) {
      clearInterval(this.timer);
    }
    this.model.changed.disconnect(this.schedule, this);
    super.dispose();
  }
}
