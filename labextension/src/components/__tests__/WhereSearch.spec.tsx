import * as React from 'react';
import { act } from 'react';
import { createRoot } from 'react-dom/client';

import { DS01Client } from '../../client';
import { ApiError } from '../../models/errors';
import { IWhere } from '../../models/types';
import { IOpenTarget } from '../../models/whereView';
import { WhereSearch } from '../WhereSearch';

(globalThis as any).IS_REACT_ACT_ENVIRONMENT = true;

const FOUND: IWhere = {
  project: 'demo',
  pattern: 'run*.csv',
  matches: [
    { where: 'container', path: '/tmp/run2.csv', size: 10, kind: 'work', how: 'at risk in the container' },
    {
      where: 'workspace',
      path: '/workspace/results/run1.csv',
      host_path: '/home/ada/workspace/demo/results/run1.csv',
      size: 120,
      how: 'safe in the workspace'
    }
  ],
  truncated: false,
  notes: []
};

async function render(element: JSX.Element): Promise<HTMLElement> {
  const host = document.createElement('div');
  document.body.appendChild(host);
  const root = createRoot(host);
  await act(async () => root.render(element));
  return host;
}

async function search(host: HTMLElement, pattern: string): Promise<void> {
  const input = host.querySelector('input[type="search"]') as HTMLInputElement;
  await act(async () => {
    const setter = Object.getOwnPropertyDescriptor(HTMLInputElement.prototype, 'value')!.set!;
    setter.call(input, pattern);
    input.dispatchEvent(new Event('input', { bubbles: true }));
  });
  await act(async () => {
    host.querySelector('form')!.dispatchEvent(new Event('submit', { bubbles: true, cancelable: true }));
  });
}

describe('WhereSearch', () => {
  it('shows matches grouped by where, opens a workspace file and rescues one at risk', async () => {
    const asked: string[] = [];
    const client = {
      where: async (_project: string, pattern: string) => {
        asked.push(pattern);
        return FOUND;
      }
    } as unknown as DS01Client;
    const opened: IOpenTarget[] = [];
    let rescued = 0;
    const host = await render(
      <WhereSearch
        client={client}
        project="demo"
        serverRoot="/home/ada"
        onOpen={target => opened.push(target)}
        onRescue={async () => {
          rescued += 1;
        }}
      />
    );
    await search(host, 'run*.csv');
    expect(asked).toEqual(['run*.csv']);
    const groups = Array.from(host.querySelectorAll('section')).map(s => s.getAttribute('data-test-id'));
    expect(groups).toEqual(['ds01-where-group-workspace', 'ds01-where-group-container']);
    expect(host.textContent).toContain('2 matches of run*.csv.');
    expect(host.textContent).toContain('safe in the workspace');
    // Only the workspace file is a link; the container's is text with "Rescue now".
    const links = host.querySelectorAll('button.jp-ds01-link');
    expect(links).toHaveLength(1);
    await act(async () => (links[0] as HTMLButtonElement).click());
    expect(opened).toEqual([{ path: 'workspace/demo/results/run1.csv', command: 'docmanager:open' }]);
    const rescue = Array.from(host.querySelectorAll('button')).find(b => b.textContent === 'Rescue now')!;
    await act(async () => rescue.click());
    expect(rescued).toBe(1);
    expect(asked).toEqual(['run*.csv', 'run*.csv']); // searched again once the rescue finished
  });

  it("shows the server's refusal inline", async () => {
    const client = {
      where: async () => {
        throw new ApiError(400, {
          error: 'InvalidRequest',
          message: "A pattern is a glob of 1 to 512 characters, e.g. '*.csv' or '/tmp/*'."
        });
      }
    } as unknown as DS01Client;
    const host = await render(
      <WhereSearch client={client} project="demo" serverRoot="/" onOpen={() => null} onRescue={async () => null} />
    );
    await search(host, '');
    expect(host.querySelector('[role="alert"]')?.textContent).toContain('A pattern is a glob');
    expect(host.querySelectorAll('section')).toHaveLength(0);
  });
});
