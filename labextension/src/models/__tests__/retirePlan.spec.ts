import { retirePlan } from '../retirePlan';
import { IAudit } from '../types';

// Shaped like GET /ds01/projects/<name>/audit (Audit.to_dict in core/guard.py).
const audit: IAudit = {
  project: 'alpha',
  container: 'alpha._.ada',
  state: 'running',
  at_risk: 3,
  summary: {},
  findings: [
    { path: '/root/.cache/pip', kind: 'cache', size: 5000, source: 'writable-layer', files: 12 },
    { path: 'pip:requests==2.32.0', kind: 'environment', size: 400000, source: 'pip' },
    {
      path: '/tmp/result.csv',
      kind: 'work',
      size: 8,
      source: 'writable-layer',
      notebook: 'notebooks/a.ipynb',
      cell: 1
    },
    { path: '/opt/model.pt', kind: 'work', size: 2048, source: 'writable-layer', checkpoint: true },
    { path: '/root/.ipython/profile', kind: 'noise', size: 10, source: 'writable-layer' }
  ],
  truncated: false,
  notes: ['Packages installed by hand are listed; rescue adds them to requirements.txt.']
};

describe('retire dialog content', () => {
  it('groups what would be lost by kind, work first, with counts and sizes', () => {
    const plan = retirePlan(audit);
    expect(plan.groups.map(g => [g.kind, g.files, g.bytes, g.atRisk])).toEqual([
      ['work', 2, 2056, true],
      ['environment', 1, 400000, true],
      ['cache', 12, 5000, false]
    ]);
    expect(plan.groups[0].items.map(f => f.path)).toEqual(['/tmp/result.csv', '/opt/model.pt']);
    expect(plan.atRiskFiles).toBe(3);
    expect(plan.atRiskBytes).toBe(402056);
    expect(plan.clean).toBe(false);
    expect(plan.notes).toHaveLength(1);
  });

  it('needs no choice when only caches and noise would go', () => {
    const plan = retirePlan({
      ...audit,
      at_risk: 0,
      findings: audit.findings.filter(f => f.kind === 'cache' || f.kind === 'noise')
    });
    expect(plan.clean).toBe(true);
    expect(plan.groups.map(g => g.kind)).toEqual(['cache']);
  });
});
