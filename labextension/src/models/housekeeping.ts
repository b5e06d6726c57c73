/**
 * The storage view and its cleanups, as pure functions: the view's state as one
 * reducer (the usage answer, the "files over" threshold), the lines it shows
 * (free space, images with shared layers counted once), and the previews of a
 * project's cleanup and of an image prune that the confirm dialogs list.
 */
import { ICleanPlan, ICleanRequest, IDiskSpace, IImageInfo, IImagePrune, IImageTotals, IUsage } from './types';
import { IListing, listing, ListingAction } from './listing';
import { formatBytes } from './units';

/** The units `ds01 usage --larger-than` takes (binary, as the server's parse_size): 500M, 1G, 1.5 GB, 2TiB. */
const SIZE = /^\s*(\d+(?:\.\d+)?)\s*([kmgtp]?)i?b?\s*$/i;
const UNITS: Record<string, number> = { '': 1, k: 2 ** 10, m: 2 ** 20, g: 2 ** 30, t: 2 ** 40, p: 2 ** 50 };

/** Bytes of a size as people type it ("1 GB", "500M", "1.5g", "2048"); null when it is not one. */
export function parseSize(text: string): number | null {
  const match = SIZE.exec(text);
  if (!match) {
    return null;
  }
  return Math.floor(parseFloat(match[1]) * UNITS[match[2].toLowerCase()]);
}

export const DEFAULT_THRESHOLD = '1 GB';

export interface IUsageViewState extends IListing<IUsage> {
  /** What is typed in "Files over". */
  threshold: string;
  /** The bytes the shown large files were asked with; null until a search. */
  largerThan: number | null;
}

export const INITIAL_USAGE: IUsageViewState = {
  data: null,
  loading: false,
  error: '',
  threshold: DEFAULT_THRESHOLD,
  largerThan: null,
  generation: 0
};

export type UsageViewAction = ListingAction<IUsage> | { type: 'threshold'; text: string } | { type: 'find' };

export function usageView(state: IUsageViewState, action: UsageViewAction): IUsageViewState {
  switch (action.type) {
    case 'refresh':
    case 'loading':
    case 'loaded':
    case 'failed':
      return listing(state, action);
    case 'threshold':
      return { ...state, threshold: action.text };
    case 'find': {
      const bytes = parseSize(state.threshold);
      if (bytes === null) {
        return { ...state, error: `Not a size: ${state.threshold.trim() || '(empty)'}. Write e.g. 500 MB or 1 GB.` };
      }
      return { ...state, largerThan: bytes, error: '', generation: state.generation + 1 };
    }
  }
}

/** "1.3 GB in 5 images (1 GB unique, 359 MB shared, counted once)"; what `docker system df -v` would say. */
export function imagesLine(images: IImageTotals | null | undefined): string {
  if (!images) {
    return 'Images: not known (the container engine is not answering).';
  }
  if (!images.count) {
    return 'No images yet.';
  }
  const n = `${images.count} image${images.count === 1 ? '' : 's'}`;
  return (
    `${formatBytes(images.total_bytes)} in ${n} ` +
    `(${formatBytes(images.unique_bytes)} unique, ${formatBytes(images.shared_bytes)} shared, counted once)`
  );
}

/** The disk's use for a bar and its line: "12 GB free of 100 GB". */
export function diskLine(disk: IDiskSpace | null | undefined): { used: number; total: number; text: string } | null {
  if (!disk || !disk.total_bytes) {
    return null;
  }
  const used = Math.max(0, disk.total_bytes - disk.free_bytes);
  return {
    used,
    total: disk.total_bytes,
    text: `${formatBytes(disk.free_bytes)} free of ${formatBytes(disk.total_bytes)}`
  };
}

export interface IProjectUsageRow {
  project: string;
  bytes: number;
  checkpointBytes: number;
  imageBytes: number | null;
}

/** The projects of a usage answer, biggest workspace first. */
export function projectRows(usage: IUsage): IProjectUsageRow[] {
  return Object.entries(usage.projects ?? {})
    .map(([project, p]) => ({
      project,
      bytes: p.bytes ?? 0,
      checkpointBytes: p.checkpoint_bytes ?? 0,
      imageBytes: p.image_bytes ?? null
    }))
    .sort((a, b) => b.bytes - a.bytes || a.project.localeCompare(b.project));
}

/** What a cleanup request asks: the scratch files, and with keepLast the checkpoints beyond the newest N of each run. */
export function cleanRequest(keepLast: number | null): ICleanRequest {
  return keepLast === null || !isFinite(keepLast) ? {} : { keep_last: Math.max(0, Math.floor(keepLast)) };
}

export interface ICleanRow {
  kind: string;
  count: number;
  bytes: number;
}

/** A cleanup's counts per kind (the biggest first), and the checkpoints it prunes as one more kind. */
export function cleanRows(plan: ICleanPlan): ICleanRow[] {
  const rows = Object.entries(plan.counts ?? {}).map(([kind, [count, bytes]]) => ({ kind, count, bytes }));
  const checkpoints = plan.checkpoints ? (plan.checkpoints.deleted ?? plan.checkpoints.would_delete ?? []) : [];
  if (checkpoints.length) {
    rows.push({ kind: 'old checkpoints', count: checkpoints.length, bytes: plan.checkpoints?.bytes ?? 0 });
  }
  return rows.sort((a, b) => b.bytes - a.bytes || a.kind.localeCompare(b.kind));
}

/** How many items a cleanup removes (or removed), checkpoints included. */
export function cleanCount(plan: ICleanPlan): number {
  return cleanRows(plan).reduce((n, r) => n + r.count, 0);
}

/** One sentence for a cleanup: the preview's title, or what a confirmed one did. */
export function cleanSummary(plan: ICleanPlan): string {
  const n = cleanCount(plan);
  if (!n) {
    return `Nothing to clean in ${plan.project}.`;
  }
  const items = `${n} item${n === 1 ? '' : 's'}`;
  return plan.deleted
    ? `Cleaned ${plan.project}: deleted ${items}, ${formatBytes(plan.bytes)}.`
    : `Delete ${items} of ${plan.project}, ${formatBytes(plan.bytes)}?`;
}

/** An image as people know it: its first tag, else its short id. */
export function imageName(image: IImageInfo): string {
  if (image.tags?.length) {
    return image.tags[0];
  }
  return image.id.replace(/^sha256:/, '').slice(0, 12);
}

const STATE_LABEL: Record<string, string> = {
  current: "a project's current build",
  superseded: 'superseded by a newer build',
  dangling: 'untagged (dangling)'
};

/** Why an image goes or stays, for the prune preview. */
export function imageReason(image: IImageInfo): string {
  const state = STATE_LABEL[image.state] ?? image.state;
  const project = image.project ? ` of ${image.project}` : '';
  if (image.used_by?.length) {
    return `${state}${project}, used by ${image.used_by.join(', ')}`;
  }
  return `${state}${project}`;
}

/** The images a prune removes (or removed), and those it keeps (current builds, or used by a container). */
export function prunePlan(
  prune: IImagePrune,
  images: IImageInfo[]
): { doomed: IImageInfo[]; kept: IImageInfo[]; failed: IImageInfo[] } {
  const doomed = prune.deleted ?? prune.would_delete ?? [];
  const going = new Set(doomed.map(i => i.id));
  return { doomed, kept: images.filter(i => !going.has(i.id)), failed: prune.failed ?? [] };
}

/** One sentence for an image prune: the preview's title, or what a confirmed one did. */
export function pruneSummary(prune: IImagePrune): string {
  const doomed = prune.deleted ?? prune.would_delete ?? [];
  const n = `${doomed.length} image${doomed.length === 1 ? '' : 's'}`;
  if (prune.deleted) {
    const failed = prune.failed?.length ? `; ${prune.failed.length} could not be removed` : '';
    return `Removed ${n}, ${formatBytes(prune.bytes)}${failed}.`;
  }
  return doomed.length
    ? `Remove ${n}, up to ${formatBytes(prune.bytes)}?`
    : 'Nothing to prune: every image is a current build or used by a container.';
}
