/**
 * Typed wrapper over the ds01 REST API: one request function, authenticated
 * through JupyterLab's ServerConnection (token and XSRF handled there).
 */
import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';

import { ApiError } from './models/errors';
import {
  IAudit,
  ICheckpoints,
  ICleanPlan,
  ICleanRequest,
  IGpus,
  IImageInfo,
  IImagePrune,
  ILimits,
  INotebookFinding,
  IOperation,
  IOverview,
  IProject,
  IPrunePlan,
  IPrunePolicy,
  IRescue,
  IRetireRequest,
  IRetireResult,
  IStopResult,
  IStopServerResult,
  ITerminalCommand,
  IUsage,
  IVersion,
  IWhere
} from './models/types';

/** The server's URL namespace; the same constant as the server's handlers. */
export const NAMESPACE = 'ds01';

/**
 * The client as consumers see it (every public method, nothing private), so a
 * test can hand the model a mock of the same shape.
 */
export type IDS01Client = Pick<DS01Client, keyof DS01Client>;

export class DS01Client {
  constructor(readonly serverSettings: ServerConnection.ISettings = ServerConnection.makeSettings()) {}

  url(...parts: string[]): string {
    return URLExt.join(this.serverSettings.baseUrl, NAMESPACE, ...parts.map(encodeURIComponent));
  }

  /**
   * Call the API; a non-2xx answer becomes an ApiError carrying the server's message and hint.
   * Private: every request goes through a typed method below.
   */
  private async request<T>(path: string[], init: RequestInit = {}, query = ''): Promise<T> {
    const url = this.url(...path) + query;
    let response: Response;
    try {
      response = await ServerConnection.makeRequest(url, init, this.serverSettings);
    } catch (error) {
      throw new ApiError(0, { error: 'NetworkError', message: `The Jupyter server cannot be reached: ${error}` });
    }
    const text = await response.text();
    let data: any = null;
    try {
      data = text ? JSON.parse(text) : null;
    } catch {
      data = null;
    }
    if (!response.ok) {
      throw ApiError.from(response.status, data, text);
    }
    return data as T;
  }

  private post<T>(path: string[], body: unknown = {}, query = ''): Promise<T> {
    return this.request<T>(path, { method: 'POST', body: JSON.stringify(body) }, query);
  }

  version(): Promise<IVersion> {
    return this.request(['version']);
  }
  overview(): Promise<IOverview> {
    return this.request(['projects']);
  }
  project(name: string): Promise<IProject & { dockerfile?: string }> {
    return this.request(['projects', name]);
  }
  createProject(name: string): Promise<IProject> {
    return this.post(['projects'], { name });
  }
  build(name: string): Promise<{ operation: IOperation }> {
    return this.post(['projects', name, 'build']);
  }
  deploy(name: string, gpus?: number | null, framework?: string): Promise<{ operation: IOperation }> {
    return this.post(['projects', name, 'deploy'], {
      ...(gpus === undefined ? {} : { gpus }),
      ...(framework === undefined ? {} : { framework })
    });
  }
  start(name: string): Promise<unknown> {
    return this.post(['projects', name, 'start']);
  }
  /** Inside a hub server (container mode): ask the hub to stop this server, rescuing files outside /workspace first. */
  stopServer(name: string): Promise<IStopServerResult> {
    return this.post(['projects', name, 'stop']);
  }
  /** Stop the container; 409 (UnsavedWork, with `processes`) while work runs inside, unless stopProcesses. */
  stop(name: string, stopProcesses = false): Promise<IStopResult> {
    return this.post(['projects', name, 'stop'], { stop_processes: stopProcesses });
  }
  /** Retire through the guard (see models/retirePlan.ts retireRequest for the body the dialog sends). */
  retire(name: string, request: IRetireRequest): Promise<IRetireResult> {
    return this.post(['projects', name, 'retire'], request);
  }
  audit(name: string): Promise<IAudit> {
    return this.request(['projects', name, 'audit']);
  }
  rescue(name: string): Promise<IRescue> {
    return this.post(['projects', name, 'rescue']);
  }
  /** The command a JupyterLab terminal runs to open a shell inside the running container. */
  terminal(name: string): Promise<ITerminalCommand> {
    return this.request(['projects', name, 'terminal']);
  }
  /** Checkpoints by run; best (overall and per run) by `metric` and `mode`, the server's defaults when left out. */
  checkpoints(name: string, options: { metric?: string; mode?: 'min' | 'max' } = {}): Promise<ICheckpoints> {
    const params: Record<string, string> = {};
    if (options.metric) {
      params.metric = options.metric;
    }
    if (options.mode) {
      params.mode = options.mode;
    }
    const query = Object.keys(params).length ? URLExt.objectToQueryString(params) : '';
    return this.request(['projects', name, 'checkpoints'], {}, query);
  }
  prune(name: string, policy: IPrunePolicy, confirm = false): Promise<IPrunePlan> {
    return this.post(['projects', name, 'prune'], { ...policy, confirm });
  }
  /** The guide's cleanup of a project (tmp/, *.tmp, caches, old checkpoints by a policy): a preview unless confirm. */
  clean(name: string, request: ICleanRequest = {}, confirm = false): Promise<ICleanPlan> {
    return this.post(['projects', name, 'clean'], { ...request, confirm });
  }
  /** "Where are my files?": matches of a name or glob in the workspace, rescues, the container and retired ones. */
  where(name: string, pattern: string): Promise<IWhere> {
    return this.request(['projects', name, 'where'], {}, URLExt.objectToQueryString({ pattern }));
  }
  /** Disk use per project, images (shared layers once) and free space; with largerThan, the files of at least that size. */
  usage(largerThan?: number): Promise<IUsage> {
    const query = largerThan === undefined ? '' : URLExt.objectToQueryString({ larger_than: String(largerThan) });
    return this.request(['usage'], {}, query);
  }
  /** The user's images with their state (current, superseded, dangling) and the containers using them. */
  images(): Promise<{ images: IImageInfo[] }> {
    return this.request(['images']);
  }
  /** The superseded and dangling images no container uses: a preview unless confirm. */
  pruneImages(confirm = false): Promise<IImagePrune> {
    return this.post(['images', 'prune'], { confirm });
  }
  gpus(): Promise<IGpus> {
    return this.request(['gpus']);
  }
  limits(): Promise<ILimits> {
    return this.request(['limits']);
  }
  operation(id: string): Promise<IOperation> {
    return this.request(['operations', id]);
  }
  notebookCheck(cells: string[]): Promise<{ findings: INotebookFinding[] }> {
    return this.post(['notebook-check'], { cells });
  }
  /**
   * Open the server-sent event stream (read by EventStream): the raw response,
   * since its body is read as it arrives; its status is for the caller to judge.
   */
  events(signal: AbortSignal): Promise<Response> {
    return ServerConnection.makeRequest(
      this.url('events'),
      { signal, headers: { Accept: 'text/event-stream' } },
      this.serverSettings
    );
  }
}
