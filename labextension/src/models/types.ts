/**
 * Payloads of the ds01 REST API and its events (see ds01_jupyter/server/openapi.yaml).
 */

export interface IContainer {
  project: string;
  name: string;
  id: string;
  state: string;
  running?: boolean;
  image?: string;
  stale_image?: boolean;
  gpus?: string[];
  gpu_slots?: number;
  workspace?: string;
  started_at?: string | null;
  finished_at?: string | null;
  /** Its GPUs are still its own: it runs, or stopped within gpu_hold_after_stop (a crash frees them). */
  holds_gpu?: boolean;
  /** When its GPUs stop being its own by time alone (ISO 8601, UTC); null while it holds none or only an event ends the hold. */
  gpu_hold_ends?: string | null;
  uptime_seconds?: number | null;
  idle_seconds?: number | null;
  exit_code?: number | null;
  error?: string;
  protected?: boolean;
  /** The framework whose image it runs instead of the project's own ("" when none). */
  fallback?: string;
  /** What of its workspace the user cannot write ("." for the folder, models, results). */
  unwritable?: string[];
}

export interface IImage {
  tag?: string;
  id?: string;
  size?: number;
  [key: string]: unknown;
}

export interface ISize {
  bytes?: number;
  [key: string]: unknown;
}

export interface IProject {
  name: string;
  path: string;
  /** Absent only in the answer of POST /projects (a new project has none). */
  container?: IContainer | null;
  image?: IImage | null;
  size?: ISize | null;
  warnings?: number;
  /** What of the project's folder the user cannot write ("." for the folder, models, results). */
  unwritable?: string[];
  /** Whether its code is committed and pushed; absent from servers that do not say. */
  git?: IGitState | null;
}

export interface IEngine {
  available: boolean;
  reason?: string;
}

export interface IOperation {
  id: string;
  kind: 'deploy' | 'build' | string;
  project: string;
  state: 'running' | 'done' | 'failed' | string;
  lines?: string[];
  result?: Record<string, unknown> | null;
  error?: IErrorBody | null;
  started?: number;
  finished?: number | null;
}

export interface IErrorBody {
  error: string;
  message: string;
  hint?: string;
  /** The limit a 409 refers to. */
  limit?: string;
  [key: string]: unknown;
}

export interface IFinding {
  path: string;
  /** process (running work) is at risk like work; kernel (an idle kernel) is shown quietly. */
  kind: 'work' | 'environment' | 'cache' | 'process' | 'kernel' | 'noise' | string;
  size: number;
  source: string;
  checkpoint?: boolean;
  detail?: string;
  notebook?: string | null;
  cell?: number | null;
  files?: number;
  /** Process and kernel findings (core/processes.py): the topmost process of a job and its children. */
  pid?: number;
  command?: string;
  /** UNIX time the process started. */
  started?: number;
  cpu_seconds?: number;
  cpu_percent?: number;
  busy?: boolean;
  /** Processes in the job (the topmost one and its children). */
  processes?: number;
  uid?: number;
  gpu_memory?: number;
  /** UNIX time the executing cell started. */
  cell_started?: number;
}

/** What stopping a container's running processes did (null when none ran). */
export interface IStopReport {
  count: number;
  ended: number;
  killed: number;
  left: number;
  seconds: number | null;
  processes: { pid: number; command: string; processes?: number; outcome: 'ended' | 'killed' | 'left' | string }[];
}

/** A file or cache a rescue left behind (kind "cache" with its size for a cache). */
export interface ISkipped {
  path: string;
  why: string;
  size?: number;
  files?: number;
  kind?: string;
}

export interface IRescue {
  folder: string;
  files: number;
  bytes: number;
  skipped: ISkipped[];
  packages: string[];
}

/** Body of POST /projects/<name>/retire. */
export interface IRetireRequest {
  mode: 'rescue' | 'discard' | null;
  include_caches: boolean;
  stop_processes: boolean;
}

/** Answer of POST /projects/<name>/retire. */
export interface IRetireResult {
  container?: IContainer;
  rescued?: IRescue | null;
  discarded?: number;
  processes?: IStopReport | null;
  dropped_caches?: ISkipped[];
}

/** Answer of POST /projects/<name>/stop: the container, and what stopping its processes did. */
export type IStopResult = IContainer & { processes?: IStopReport | null };

/** Answer of POST /projects/<name>/stop inside a hub server (container mode, 202): the hub stops it. */
export interface IStopServerResult {
  project: string;
  stopping: boolean;
  message: string;
}

/** Answer of GET /projects/<name>/terminal: the command that opens a shell inside the running container. */
export interface ITerminalCommand {
  project: string;
  command: string[];
  /** The command as one shell-quoted line, typed into a JupyterLab terminal. */
  line: string;
}

/** A 409 UnsavedWork answer of retire or stop: what would be lost, and the running processes. */
export interface IUnsavedWorkBody extends IErrorBody {
  findings?: IFinding[];
  processes?: IFinding[];
}

/** The reaper's notice, 30 minutes before max_runtime stops a container. */
export interface IRuntimeWarning {
  project: string;
  container?: string;
  message?: string;
  /** UNIX time the container is stopped. */
  stops_at?: number;
}

export interface IAudit {
  project: string;
  container: string;
  state: string;
  at_risk: number;
  summary: Record<string, { count: number; items?: number; bytes?: number }>;
  findings: IFinding[];
  truncated?: boolean;
  notes?: string[];
  scanned_at?: number;
}

export interface IGpu {
  uuid: string;
  index: string;
  name: string;
  memory_total: number;
  memory_used: number;
  utilization: number | null;
  is_mig?: boolean;
  holder: { user?: string; project?: string; container?: string } | null;
}

export interface IGpus {
  gpus: IGpu[];
  notice?: string;
}

export interface ILimits {
  user: string;
  /** null where the server cannot know them (inside a hub server's container, unless the hub handed them in). */
  limits: Record<string, number | boolean | string | null> | null;
  limits_readable?: Record<string, string> | null;
  containers: number;
  running: number;
  gpu_slots: number;
  gpus: string[];
  disk?: { total_bytes: number; quota_bytes: number | null; over_quota?: boolean } | null;
  /** Whether the use could be counted, and why not. */
  engine?: IEngine;
}

/** How a checkpoint was written, as the server's scanner recognised it. */
export type CheckpointKind = 'file' | 'huggingface' | 'distributed' | 'lightning' | 'keras' | 'folder';

/** complete: loadable; incomplete: a part is missing or truncated (see problem); in_progress: being written. */
export type CheckpointState = 'complete' | 'incomplete' | 'in_progress';

export interface ICheckpoint {
  path: string;
  name: string;
  /** Relative to the project's models/ folder. */
  relpath: string;
  /** The run (sub-folder of models/, e.g. "bert/exp1") it belongs to; "" for models/ itself. */
  run: string;
  kind: CheckpointKind | string;
  epoch: number | null;
  step: number | null;
  metrics: Record<string, number>;
  /** A role file: best-model.pt, last.ckpt, a trainer's recorded best; never "latest" by time alone. */
  role: 'best' | 'latest' | null;
  state: CheckpointState | string;
  complete: boolean;
  /** Why it is incomplete or in progress; "" when complete. */
  problem: string;
  /** Something odd that does not make it incomplete (a number out of range in its name); "" or absent when none. */
  warning?: string;
  size: number;
  /** UNIX time (seconds). */
  mtime: number;
  folder: boolean;
  /** What a resume in its run loads. */
  is_latest: boolean;
  /** Best by the chosen metric in its run. */
  is_best: boolean;
}

/** One entry of a trainer's log (a Hugging Face trainer_state.json log_history). */
export interface IHistoryEntry {
  step: number | null;
  epoch: number | null;
  metrics: Record<string, number>;
}

export interface ICheckpointRun {
  /** Sub-folder of models/ ("bert/exp1"), "" for models/ itself. */
  run: string;
  count: number;
  bytes: number;
  /** relpath of what a resume in this run loads. */
  latest: string | null;
  /** relpath of the run's best by the chosen metric. */
  best: string | null;
  /** May be empty. */
  history: IHistoryEntry[];
}

/** Answer of GET /projects/<name>/checkpoints?metric=&mode=. */
export interface ICheckpoints {
  project: string;
  directory: string;
  mode: 'min' | 'max';
  /** The metric best is chosen by; null when no checkpoint recorded one. */
  metric: string | null;
  metrics: string[];
  bytes: number;
  /** relpath of the overall resume point. */
  latest: string | null;
  /** relpath of the overall best by metric. */
  best: string | null;
  runs: ICheckpointRun[];
  checkpoints: ICheckpoint[];
  /** What the listing could not read (a folder it could not enter, a listing cut short); may be absent. */
  problems?: string[];
}

/** A checkpoint a prune deletes (or would), and why. */
export type IPruneVictim = ICheckpoint & { reason: string };

/** A checkpoint a prune keeps, and why. */
export interface IPruneKept {
  relpath: string;
  run: string;
  reason: string;
}

/** Body of POST /projects/<name>/prune (besides confirm): what to keep, by age, count and metric. */
export interface IPrunePolicy {
  keep_last?: number;
  keep_best?: number;
  metric?: string;
  mode?: 'min' | 'max';
  older_than_days?: number;
}

/** Answer of POST /projects/<name>/prune: would_delete on a preview, deleted once confirmed. */
export interface IPrunePlan {
  project: string;
  would_delete?: IPruneVictim[];
  deleted?: IPruneVictim[];
  kept: IPruneKept[];
  bytes: number;
}

export interface INotebookFinding {
  cell: number;
  line: number;
  path: string;
  snippet?: string;
  [key: string]: unknown;
}

export interface IVersion {
  version: string;
  api: number;
  /** "host" (default) or "container" (JupyterHub in-container mode: no deploy/retire). */
  mode?: 'host' | 'container' | string;
  /** The project of that container (container mode only). */
  project?: string;
}

/** A `warning` event: a server scan found new files at risk, a checkpoint problem, or a max_runtime notice. */
export interface IWarningEvent {
  project: string;
  kind?: string;
  at_risk?: number;
  new?: { path: string; size: number; kind: string; notebook?: string | null }[];
  [key: string]: unknown;
}

/** Events of /ds01/events. */
export type DS01Event =
  | ({ type: 'snapshot'; operations?: IOperation[] } & IOverview)
  | {
      type: 'container';
      action: string;
      project: string;
      id?: string;
      name?: string;
      exit_code?: number | null;
      time?: number;
    }
  | { type: 'gpu'; action: string; uuids: string[]; project?: string }
  | ({ type: 'operation'; line?: string } & IOperation)
  | { type: 'engine'; available: boolean; reason?: string }
  | {
      type: 'warning';
      project: string;
      kind?: string;
      at_risk?: number;
      new?: IFinding[];
      [key: string]: unknown;
    }
  | { type: 'reaper'; [key: string]: unknown };

export interface IOverview {
  user: string;
  engine: IEngine;
  projects: IProject[];
  /** "container" inside a JupyterHub server's own project container; absent on the host. */
  mode?: string;
  /** Framework images a deploy may run on while a project has no image (`base` always). */
  frameworks?: string[];
}

/**
 * What a project's git says (GET /projects: each project's `git`), in the DS01 guide's terms:
 * use git for code and push regularly. Read by the server as the user, with a time limit.
 */
export interface IGitState {
  repository: boolean;
  commits: boolean;
  branch: string;
  /** Tracked files with changes, staged or not. */
  changed: number;
  untracked: number;
  remote: boolean;
  /** Whether the branch has an upstream (was pushed with -u). */
  upstream: boolean;
  ahead: number;
  behind: number;
  /** Why git could not answer ("" when it did). */
  problem: string;
  /** One line: "no commit yet", "3 uncommitted changes, no remote", "committed and pushed". */
  summary: string;
}

/** Where a match of "where are my files?" is: safe (workspace, rescued), at risk (container), or gone with a retired container. */
export type WhereKind = 'workspace' | 'rescued' | 'container' | 'retired';

export interface IWhereMatch {
  where: WhereKind | string;
  /** As the container sees it: /workspace/... in the workspace, the original path of a rescued copy. */
  path: string;
  size?: number | null;
  /** UNIX time (seconds). */
  mtime?: number;
  /** The file on the host (workspace and rescued copies). */
  host_path?: string;
  /** The rescue's UTC time folder under .rescued/. */
  stamp?: string;
  retired_at?: string;
  /** The guard's kind (work, cache...) of a container match. */
  kind?: string;
  /** How to get it back, for a person. */
  how: string;
}

/** Answer of GET /projects/<name>/where?pattern=GLOB (at most 200 matches). */
export interface IWhere {
  project: string;
  pattern: string;
  matches: IWhereMatch[];
  truncated: boolean;
  notes: string[];
}

/** A project's line of GET /usage. */
export interface IProjectUsage {
  /** Allocated bytes, as du counts them. */
  bytes: number;
  apparent_bytes?: number;
  files?: number;
  measured_at?: number;
  /** [relative path, bytes], biggest first. */
  largest?: [string, number][];
  checkpoint_bytes?: number;
  image_bytes?: number | null;
}

/** The user's images with a layer several share (the base image) counted once, as `docker system df -v` does. */
export interface IImageTotals {
  count: number;
  unique_bytes: number;
  shared_bytes: number;
  total_bytes: number;
}

/** The disk the workspaces are on. */
export interface IDiskSpace {
  path: string;
  free_bytes: number;
  total_bytes: number;
}

/** Answer of GET /usage?larger_than=BYTES. */
export interface IUsage {
  projects: { [project: string]: IProjectUsage };
  total_bytes: number;
  image_bytes?: number | null;
  /** null while the engine is away. */
  images?: IImageTotals | null;
  quota_bytes?: number | null;
  over_quota?: boolean;
  disk?: IDiskSpace | null;
  larger_than?: number;
  /** [project, path relative to the project, bytes], biggest first, at most 200 (with larger_than only). */
  large_files?: [string, string, number][];
}

/** Body of POST /projects/<name>/clean: a checkpoint retention policy adds old checkpoints to the cleanup. */
export interface ICleanRequest {
  keep_last?: number;
  keep_best?: number;
  metric?: string;
  older_than_days?: number;
}

/** A path a cleanup removes (relative to the project). */
export interface ICleanItem {
  path: string;
  /** What it is, as people say it: "the project's tmp/", "python caches", "notebook autosaves"... */
  kind: string;
  bytes: number;
  folder: boolean;
}

/** Answer of POST /projects/<name>/clean: a preview, or (deleted) what went. */
export interface ICleanPlan {
  project: string;
  /** At most 200 listed (truncated says more were found); counts and bytes cover them all. */
  items: ICleanItem[];
  /** kind -> [number, bytes]. */
  counts: { [kind: string]: [number, number] };
  bytes: number;
  truncated: boolean;
  /** The checkpoint retention plan, when a policy was given. */
  checkpoints: IPrunePlan | null;
  deleted: boolean;
}

/** One of the user's images (GET /images). */
export interface IImageInfo {
  id: string;
  project: string;
  tags: string[];
  size: number;
  /** ISO time, or null. */
  created: string | null;
  /** current: a project's build; superseded: an older build or one of a project gone; dangling: untagged. */
  state: 'current' | 'superseded' | 'dangling' | string;
  /** Containers that use it (it is never pruned while any does). */
  used_by: string[];
  /** Why removing it failed (in `failed`). */
  problem?: string;
}

/** Answer of POST /images/prune: would_delete on a preview, deleted once confirmed. */
export interface IImagePrune {
  would_delete?: IImageInfo[];
  deleted?: IImageInfo[];
  failed: IImageInfo[];
  bytes: number;
}
