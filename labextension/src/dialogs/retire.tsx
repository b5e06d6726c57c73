/**
 * The retire dialog: what would be lost (from an audit), with rescue and
 * retire, discard and retire, or cancel.
 */
import { Dialog, ReactWidget, showDialog } from '@jupyterlab/apputils';
import * as React from 'react';

import { IRetirePlan } from '../models/retirePlan';
import { formatBytes } from '../models/units';

export type RetireChoice = 'rescue' | 'discard' | null;

function PlanView(props: { plan: IRetirePlan }): JSX.Element {
  const { plan } = props;
  if (plan.clean) {
    return (
      <div className="jp-ds01-dialog" data-test-id="ds01-retire-dialog">
        <p>Nothing outside /workspace would be lost. The workspace stays; the container is removed.</p>
      </div>
    );
  }
  return (
    <div className="jp-ds01-dialog" data-test-id="ds01-retire-dialog">
      <p>
        Retiring removes the container of <strong>{plan.project}</strong>. These would be lost ({plan.atRiskFiles} file
        {plan.atRiskFiles === 1 ? '' : 's'} at risk, {formatBytes(plan.atRiskBytes)}):
      </p>
      {plan.groups.map(group => (
        <section key={group.kind} aria-label={group.label}>
          <h4>
            {group.label}: {group.files} file{group.files === 1 ? '' : 's'}, {formatBytes(group.bytes)}
          </h4>
          <ul className="jp-ds01-retire-list">
            {group.items.slice(0, 30).map(f => (
              <li key={f.path}>
                <code>{f.path}</code> <span className="jp-ds01-muted">{formatBytes(f.size)}</span>
              </li>
            ))}
            {group.items.length > 30 && <li>… and {group.items.length - 30} more</li>}
          </ul>
        </section>
      ))}
      {plan.truncated && <p className="jp-ds01-muted">The list is cut short; rescue copies everything at risk.</p>}
      {plan.notes.map(n => (
        <p key={n} className="jp-ds01-muted">
          {n}
        </p>
      ))}
      <p>Rescue copies them into the project's .rescued/ folder first.</p>
    </div>
  );
}

export async function askRetire(plan: IRetirePlan): Promise<RetireChoice | 'cancel'> {
  const buttons = plan.clean
    ? [Dialog.cancelButton(), Dialog.warnButton({ label: 'Retire', ariaLabel: `Retire ${plan.project}` })]
    : [
        Dialog.cancelButton(),
        Dialog.warnButton({ label: 'Discard and retire', ariaLabel: `Discard the files and retire ${plan.project}` }),
        Dialog.okButton({ label: 'Rescue and retire', ariaLabel: `Rescue the files and retire ${plan.project}` })
      ];
  const result = await showDialog({
    title: `Retire ${plan.project}?`,
    body: ReactWidget.create(<PlanView plan={plan} />),
    buttons,
    defaultButton: buttons.length - 1
  });
  if (!result.button.accept && result.button.displayType !== 'warn') {
    return 'cancel';
  }
  if (plan.clean) {
    return null;
  }
  return result.button.displayType === 'warn' ? 'discard' : 'rescue';
}
