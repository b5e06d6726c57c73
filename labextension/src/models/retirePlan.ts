/**
 * What the retire dialog shows, from an audit: the findings that would be
 * lost grouped by kind (work, environment, cache) with counts and sizes.
 */
import { IAudit, IFinding } from './types';

export interface IFindingGroup {
  kind: string;
  label: string;
  /** Work and environment are lost on retire unless rescued; caches are rebuilt. */
  atRisk: boolean;
  files: number;
  bytes: number;
  items: IFinding[];
}

const LABELS: { [kind: string]: string } = {
  work: 'Work files',
  environment: 'Environment changes (packages installed by hand)',
  cache: 'Caches (rebuilt when needed)'
};

const ORDER = ['work', 'environment', 'cache'];

export function groupFindings(findings: IFinding[]): IFindingGroup[] {
  const groups = new Map<string, IFindingGroup>();
  for (const f of findings) {
    if (f.kind === 'noise') {
      continue;
    }
    const group = groups.get(f.kind) ?? {
      kind: f.kind,
      label: LABELS[f.kind] ?? f.kind,
      atRisk: f.kind === 'work' || f.kind === 'environment',
      files: 0,
      bytes: 0,
      items: []
    };
    group.files += f.files ?? 1;
    group.bytes += f.size ?? 0;
    group.items.push(f);
    groups.set(f.kind, group);
  }
  const rank = (kind: string) => (ORDER.indexOf(kind) < 0 ? ORDER.length : ORDER.indexOf(kind));
  return [...groups.values()].sort((a, b) => rank(a.kind) - rank(b.kind));
}

export interface IRetirePlan {
  project: string;
  groups: IFindingGroup[];
  atRiskFiles: number;
  atRiskBytes: number;
  /** Nothing would be lost: retiring needs no choice. */
  clean: boolean;
  notes: string[];
  truncated: boolean;
}

export function retirePlan(audit: IAudit): IRetirePlan {
  const groups = groupFindings(audit.findings);
  const risky = groups.filter(g => g.atRisk);
  const atRiskFiles = risky.reduce((n, g) => n + g.files, 0);
  return {
    project: audit.project,
    groups,
    atRiskFiles,
    atRiskBytes: risky.reduce((n, g) => n + g.bytes, 0),
    clean: audit.at_risk === 0 && atRiskFiles === 0,
    notes: audit.notes ?? [],
    truncated: !!audit.truncated
  };
}
