/** The "new project" dialog: a name, checked as the server checks it, with the rule shown. */
import { Dialog, showDialog } from '@jupyterlab/apputils';
import { Widget } from '@lumino/widgets';

export const PROJECT_NAME = /^[a-z0-9]+(?:[-_][a-z0-9]+)*$/;

class NameBody extends Widget implements Dialog.IBodyWidget<string> {
  private input: HTMLInputElement;

  constructor() {
    super({ node: document.createElement('div') });
    this.addClass('jp-ds01-dialog');
    const label = document.createElement('label');
    label.textContent = 'Project name';
    this.input = document.createElement('input');
    this.input.className = 'jp-mod-styled';
    this.input.setAttribute('data-test-id', 'ds01-new-project-name');
    this.input.setAttribute('aria-describedby', 'ds01-new-project-help');
    this.input.placeholder = 'e.g. resnet-cifar';
    label.appendChild(this.input);
    const help = document.createElement('p');
    help.id = 'ds01-new-project-help';
    help.className = 'jp-ds01-muted';
    help.textContent =
      'Lowercase letters and digits, words joined by single - or _. You get ~/workspace/NAME (mounted at /workspace) and ~/dockerfiles/NAME.Dockerfile.';
    this.node.append(label, help);
  }

  getValue(): string {
    return this.input.value.trim();
  }

  protected onAfterAttach(): void {
    this.input.focus();
  }
}

/** Ask for a project name; null when cancelled. */
export async function askProjectName(): Promise<string | null> {
  for (;;) {
    const result = await showDialog({
      title: 'New DS01 project',
      body: new NameBody(),
      buttons: [Dialog.cancelButton(), Dialog.okButton({ label: 'Create' })],
      focusNodeSelector: 'input'
    });
    if (!result.button.accept || !result.value) {
      return null;
    }
    if (PROJECT_NAME.test(result.value) && result.value.length <= 63) {
      return result.value;
    }
    await showDialog({
      title: 'Not a valid project name',
      body: `"${result.value}" is not allowed: use lowercase letters and digits, words joined by single - or _ (at most 63 characters).`,
      buttons: [Dialog.okButton({ label: 'Try again' })]
    });
  }
}
