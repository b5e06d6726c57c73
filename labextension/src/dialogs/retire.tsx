/**
 * The retire dialog: what would be lost (from an audit): running processes
 * and cells first, the project's unsaved notebooks with "Save all", files by
 * kind, caches; with "Stop processes" and "Include caches" choices, and rescue
 * and retire, discard and retire, or cancel.
 */
import { Dialog, ReactWidget, showDialog } from '@jupyterlab/apputils';
import * as React from 'react';

import { groupHeading, IRetireChoice, IRetirePlan, retireBlocker } from '../models/retirePlan';
import { formatBytes } from '../models/units';
import { IUnsavedDocuments, ProcessList, UnsavedList } from './runningWork';

export type RetireChoice = 'rescue' | 'discard' | null;

/** The dialog's answer: the choice, and the save started with "Save all" (awaited before retiring). */
export interface IRetireAnswer extends IRetireChoice {
  saved: Promise<void>;
}

interface IOptions {
  stopProcesses: boolean;
  includeCaches: boolean;
}

function PlanView(props: {
  plan: IRetirePlan;
  initial: IOptions;
  blocker: string;
  documents: IUnsavedDocuments;
  onChange: (options: IOptions) => void;
  onSaving: (saving: Promise<void>) => void;
}): JSX.Element {
  const { plan } = props;
  const [options, setOptions] = React.useState(props.initial);
  const update = (change: Partial<IOptions>) => {
    const next = { ...options, ...change };
    setOptions(next);
    props.onChange(next);
  };
  const blocker = props.blocker && !options.stopProcesses ? props.blocker : '';
  const files = plan.groups.filter(g => g.kind !== 'process' && g.kind !== 'cache');
  const cache = plan.groups.find(g => g.kind === 'cache');
  return (
    <div className="jp-ds01-dialog" data-test-id="ds01-retire-dialog">
      {plan.clean ? (
        <p>Nothing outside /workspace would be lost. The workspace stays; the container is removed.</p>
      ) : (
        <p>
          Retiring removes the container of <strong>{plan.project}</strong>.
          {plan.atRiskFiles > 0 &&
            ` These would be lost (${plan.atRiskFiles} file${plan.atRiskFiles === 1 ? '' : 's'} at risk, ${formatBytes(plan.atRiskBytes)}):`}
        </p>
      )}
      {plan.processes.length > 0 && (
        <section aria-label="Running processes">
          <h4>Running now: {plan.processes.length} (ended when the container goes)</h4>
          <ProcessList processes={plan.processes} />
          <label className="jp-ds01-check">
            <input
              type="checkbox"
              data-test-id="ds01-stop-processes"
              checked={options.stopProcesses}
              onChange={e => update({ stopProcesses: e.currentTarget.checked })}
            />{' '}
            Stop processes: SIGTERM, a grace period to save (a trainer that checkpoints on SIGTERM does), then SIGKILL;
            the rescue runs after they ended.
          </label>
          {blocker && (
            <p className="jp-ds01-error" role="alert">
              {blocker}
            </p>
          )}
        </section>
      )}
      <UnsavedList documents={props.documents} onSaving={props.onSaving} />
      {files.map(group => (
        <section
          key={group.kind}
          aria-label={group.label}
          className={group.atRisk ? '' : 'jp-ds01-muted'}
          data-test-id={`ds01-retire-${group.kind}`}
        >
          <h4>{groupHeading(group)}</h4>
          <ul className="jp-ds01-retire-list">
            {group.items.slice(0, 30).map(f => (
              <li key={f.path}>
                <code>{f.path}</code>{' '}
                <span className="jp-ds01-muted">{group.kind === 'kernel' ? f.detail : formatBytes(f.size)}</span>
              </li>
            ))}
            {group.items.length > 30 && <li>… and {group.items.length - 30} more</li>}
          </ul>
        </section>
      ))}
      {cache && (
        <section aria-label={cache.label} className="jp-ds01-muted" data-test-id="ds01-retire-cache">
          <h4>{groupHeading(cache)}</h4>
          <ul className="jp-ds01-retire-list">
            {cache.items.slice(0, 10).map(f => (
              <li key={f.path}>
                <code>{f.path}</code> <span>{formatBytes(f.size)}</span>
              </li>
            ))}
            {cache.items.length > 10 && <li>… and {cache.items.length - 10} more</li>}
          </ul>
          <label className="jp-ds01-check">
            <input
              type="checkbox"
              data-test-id="ds01-include-caches"
              checked={options.includeCaches}
              onChange={e => update({ includeCaches: e.currentTarget.checked })}
            />{' '}
            Include caches: copy them into .rescued/ too ({formatBytes(plan.caches.bytes)}); otherwise they are dropped.
            Not with discard.
          </label>
        </section>
      )}
      {plan.truncated && <p className="jp-ds01-muted">The list is cut short; rescue copies everything at risk.</p>}
      {plan.notes.map(n => (
        <p key={n} className="jp-ds01-muted">
          {n}
        </p>
      ))}
      {!plan.clean && plan.atRiskFiles > 0 && <p>Rescue copies them into the project's .rescued/ folder first.</p>}
      {!plan.clean && plan.atRiskFiles === 0 && (
        <p>Rescue copies what the processes leave outside /workspace into .rescued/ after they ended.</p>
      )}
    </div>
  );
}

/** The dialog's body: the view, and its current choices as the dialog's value. */
class RetireBody extends ReactWidget implements Dialog.IBodyWidget<IOptions & { saved: Promise<void> }> {
  private options: IOptions;
  private saved: Promise<void> = Promise.resolve();

  constructor(
    private plan: IRetirePlan,
    initial: IOptions,
    private blocker: string,
    private documents: IUnsavedDocuments
  ) {
    super();
    this.options = initial;
  }

  getValue(): IOptions & { saved: Promise<void> } {
    return { ...this.options, saved: this.saved };
  }

  protected render(): JSX.Element {
    return (
      <PlanView
        plan={this.plan}
        initial={this.options}
        blocker={this.blocker}
        documents={this.documents}
        onChange={options => (this.options = options)}
        onSaving={saving => (this.saved = saving)}
      />
    );
  }
}

/**
 * Ask how to retire. A choice the server would refuse (processes run and
 * "Stop processes" is not ticked) brings the dialog back saying why.
 */
export async function askRetire(plan: IRetirePlan, documents: IUnsavedDocuments): Promise<IRetireAnswer | 'cancel'> {
  let options: IOptions = { stopProcesses: false, includeCaches: false };
  let blocker = '';
  for (;;) {
    const buttons = plan.clean
      ? [Dialog.cancelButton(), Dialog.warnButton({ label: 'Retire', ariaLabel: `Retire ${plan.project}` })]
      : [
          Dialog.cancelButton(),
          Dialog.warnButton({ label: 'Discard and retire', ariaLabel: `Discard the files and retire ${plan.project}` }),
          Dialog.okButton({ label: 'Rescue and retire', ariaLabel: `Rescue the files and retire ${plan.project}` })
        ];
    const result = await showDialog({
      title: `Retire ${plan.project}?`,
      body: new RetireBody(plan, options, blocker, documents),
      buttons,
      defaultButton: buttons.length - 1
    });
    if (!result.button.accept && result.button.displayType !== 'warn') {
      return 'cancel';
    }
    const value = result.value ?? { ...options, saved: Promise.resolve() };
    options = { stopProcesses: value.stopProcesses, includeCaches: value.includeCaches };
    const mode: RetireChoice = plan.clean ? null : result.button.displayType === 'warn' ? 'discard' : 'rescue';
    const answer: IRetireAnswer = { mode, ...options, saved: value.saved };
    blocker = retireBlocker(plan, answer);
    if (!blocker) {
      return answer;
    }
    await value.saved.catch(() => undefined);
  }
}
