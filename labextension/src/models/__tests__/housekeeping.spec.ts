import {
  cleanCount,
  cleanRequest,
  cleanRows,
  cleanSummary,
  diskLine,
  imageName,
  imageReason,
  imagesLine,
  INITIAL_USAGE,
  parseSize,
  projectRows,
  prunePlan,
  pruneSummary,
  usageView
} from '../housekeeping';
import { ICleanPlan, IImageInfo, IUsage } from '../types';

const GB = 2 ** 30;
const MB = 2 ** 20;

describe('parseSize', () => {
  it('reads sizes as ds01 usage --larger-than does (binary units)', () => {
    expect(parseSize('1 GB')).toBe(GB);
    expect(parseSize('1G')).toBe(GB);
    expect(parseSize('1gib')).toBe(GB);
    expect(parseSize('500M')).toBe(500 * MB);
    expect(parseSize(' 1.5 g ')).toBe(1.5 * GB);
    expect(parseSize('2048')).toBe(2048);
    expect(parseSize('0')).toBe(0);
    expect(parseSize('')).toBeNull();
    expect(parseSize('big')).toBeNull();
    expect(parseSize('-1G')).toBeNull();
    expect(parseSize('1 XB')).toBeNull();
  });
});

describe('usage view', () => {
  const usage: IUsage = {
    projects: {
      small: { bytes: 10 * MB, checkpoint_bytes: 0, image_bytes: null },
      big: { bytes: 3 * GB, checkpoint_bytes: GB, image_bytes: 400 * MB },
      also: { bytes: 10 * MB }
    },
    total_bytes: 3 * GB + 20 * MB,
    images: { count: 5, unique_bytes: GB, shared_bytes: 359 * MB, total_bytes: GB + 359 * MB },
    disk: { path: '/home/ada/workspace', free_bytes: 12 * GB, total_bytes: 100 * GB }
  };

  it('says images as docker system df -v does: shared layers counted once', () => {
    expect(imagesLine(usage.images)).toBe('1.4 GB in 5 images (1.0 GB unique, 359 MB shared, counted once)');
    expect(imagesLine({ count: 1, unique_bytes: 0, shared_bytes: 0, total_bytes: 0 })).toMatch(/in 1 image \(/);
    expect(imagesLine({ count: 0, unique_bytes: 0, shared_bytes: 0, total_bytes: 0 })).toBe('No images yet.');
    expect(imagesLine(null)).toMatch(/not known/);
  });

  it("shows the disk's free space", () => {
    expect(diskLine(usage.disk)).toEqual({ used: 88 * GB, total: 100 * GB, text: '12 GB free of 100 GB' });
    expect(diskLine(null)).toBeNull();
    expect(diskLine({ path: '/', free_bytes: 0, total_bytes: 0 })).toBeNull();
  });

  it('lists projects biggest first', () => {
    expect(projectRows(usage).map(r => r.project)).toEqual(['big', 'also', 'small']);
    expect(projectRows(usage)[0]).toEqual({ project: 'big', bytes: 3 * GB, checkpointBytes: GB, imageBytes: 400 * MB });
  });

  it('finds files over a size only when the size reads, and loads again for it', () => {
    let state = usageView(INITIAL_USAGE, { type: 'find' });
    expect(state).toMatchObject({ largerThan: GB, generation: 1, error: '' });
    state = usageView(state, { type: 'threshold', text: 'huge' });
    state = usageView(state, { type: 'find' });
    expect(state).toMatchObject({ largerThan: GB, generation: 1 });
    expect(state.error).toContain('Not a size: huge');
    state = usageView(state, { type: 'threshold', text: '500 MB' });
    state = usageView(state, { type: 'find' });
    expect(state).toMatchObject({ largerThan: 500 * MB, generation: 2, error: '' });
    state = usageView(state, { type: 'loading' });
    state = usageView(state, { type: 'loaded', data: usage });
    expect(state).toMatchObject({ loading: false, data: usage });
    expect(usageView(state, { type: 'refresh' }).generation).toBe(3);
  });
});

describe('cleanup preview', () => {
  const plan: ICleanPlan = {
    project: 'demo',
    items: [
      { path: 'tmp', kind: "the project's tmp/", bytes: 5 * MB, folder: true },
      { path: 'src/__pycache__', kind: 'python caches', bytes: 2048, folder: true },
      { path: 'a.tmp', kind: '*.tmp and *.pyc files', bytes: 10, folder: false }
    ],
    counts: {
      "the project's tmp/": [1, 5 * MB],
      'python caches': [1, 2048],
      '*.tmp and *.pyc files': [1, 10]
    },
    bytes: 5 * MB + 2058,
    truncated: false,
    checkpoints: null,
    deleted: false
  };

  it('counts and sizes per kind, biggest first', () => {
    expect(cleanRows(plan).map(r => r.kind)).toEqual(["the project's tmp/", 'python caches', '*.tmp and *.pyc files']);
    expect(cleanCount(plan)).toBe(3);
    expect(cleanSummary(plan)).toBe('Delete 3 items of demo, 5.0 MB?');
    expect(cleanSummary({ ...plan, deleted: true })).toBe('Cleaned demo: deleted 3 items, 5.0 MB.');
    expect(cleanSummary({ ...plan, items: [], counts: {}, bytes: 0 })).toBe('Nothing to clean in demo.');
  });

  it('adds the checkpoints a retention policy prunes as one more kind', () => {
    const victim = { relpath: 'checkpoint-010.pt', size: GB, reason: 'older than the newest 3' } as any;
    const withCheckpoints = { ...plan, checkpoints: { project: 'demo', would_delete: [victim], kept: [], bytes: GB } };
    expect(cleanRows(withCheckpoints)[0]).toEqual({ kind: 'old checkpoints', count: 1, bytes: GB });
    expect(cleanCount(withCheckpoints)).toBe(4);
    expect(cleanRequest(null)).toEqual({});
    expect(cleanRequest(3.7)).toEqual({ keep_last: 3 });
    expect(cleanRequest(-1)).toEqual({ keep_last: 0 });
  });
});

describe('image prune preview', () => {
  const image = (id: string, state: string, extra: Partial<IImageInfo> = {}): IImageInfo => ({
    id,
    project: 'demo',
    tags: [],
    size: 100 * MB,
    created: null,
    state,
    used_by: [],
    ...extra
  });
  const current = image('sha256:aaa', 'current', { tags: ['ds01-ada/demo:latest'] });
  const old = image('sha256:bbb', 'superseded', { tags: ['ds01-ada/demo:old'] });
  const dangling = image('sha256:0123456789abcdef', 'dangling');
  const used = image('sha256:ccc', 'superseded', { used_by: ['demo._.ada'] });

  it('names images by tag or short id, and says why each goes or stays', () => {
    expect(imageName(current)).toBe('ds01-ada/demo:latest');
    expect(imageName(dangling)).toBe('0123456789ab');
    expect(imageReason(dangling)).toBe('untagged (dangling) of demo');
    expect(imageReason(used)).toBe('superseded by a newer build of demo, used by demo._.ada');
    expect(imageReason({ ...current, project: '' })).toBe("a project's current build");
  });

  it('splits what goes from what stays, before and after confirming', () => {
    const preview = { would_delete: [old, dangling], failed: [], bytes: 200 * MB };
    const plan = prunePlan(preview, [current, old, dangling, used]);
    expect(plan.doomed.map(i => i.id)).toEqual(['sha256:bbb', 'sha256:0123456789abcdef']);
    expect(plan.kept.map(i => i.id)).toEqual(['sha256:aaa', 'sha256:ccc']);
    expect(pruneSummary(preview)).toBe('Remove 2 images, up to 200 MB?');
    expect(pruneSummary({ would_delete: [], failed: [], bytes: 0 })).toMatch(/^Nothing to prune/);
    expect(pruneSummary({ deleted: [old], failed: [{ ...dangling, problem: 'in use' }], bytes: 100 * MB })).toBe(
      'Removed 1 image, 100 MB; 1 could not be removed.'
    );
  });
});
