import * as React from 'react';
import { act } from 'react';
import { createRoot } from 'react-dom/client';

import { ICleanPlan, ICleanRequest } from '../../models/types';
import { CleanPreview } from '../CleanPreview';

(globalThis as any).IS_REACT_ACT_ENVIRONMENT = true;

const PLAN: ICleanPlan = {
  project: 'demo',
  items: [
    { path: 'tmp', kind: "the project's tmp/", bytes: 65536, folder: true },
    { path: 'notes.tmp', kind: '*.tmp and *.pyc files', bytes: 7, folder: false }
  ],
  counts: { "the project's tmp/": [1, 65536], '*.tmp and *.pyc files': [1, 7] },
  bytes: 65543,
  truncated: false,
  checkpoints: null,
  deleted: false
};

const WITH_CHECKPOINTS: ICleanPlan = {
  ...PLAN,
  checkpoints: {
    project: 'demo',
    would_delete: [{ relpath: 'checkpoint-010.pt', size: 2 ** 30, reason: 'older than the newest 3' } as any],
    kept: [],
    bytes: 2 ** 30
  }
};

describe('CleanPreview', () => {
  it('counts and sizes per kind, lists the paths, and previews again with a checkpoint policy', async () => {
    const asked: ICleanRequest[] = [];
    const confirmed: ICleanRequest[] = [];
    const host = document.createElement('div');
    const root = createRoot(host);
    await act(async () =>
      root.render(
        <CleanPreview
          initial={PLAN}
          preview={async request => {
            asked.push(request);
            return WITH_CHECKPOINTS;
          }}
          onRequest={request => confirmed.push(request)}
        />
      )
    );
    const rows = () => Array.from(host.querySelectorAll('tbody tr')).map(r => r.textContent);
    expect(rows()).toEqual(["the project's tmp/164 KB", '*.tmp and *.pyc files17 B']);
    expect(host.querySelector('ul')?.textContent).toContain('tmp/');
    expect(asked).toEqual([]); // the dialog opens with the preview already fetched

    const box = host.querySelector('[data-test-id="ds01-clean-checkpoints"]') as HTMLInputElement;
    await act(async () => box.click());
    expect(asked).toEqual([{ keep_last: 3 }]);
    expect(confirmed).toEqual([{ keep_last: 3 }]);
    expect(rows()[0]).toBe('old checkpoints11.0 GB');
    expect(host.textContent).toContain('models/checkpoint-010.pt');
  });
});
