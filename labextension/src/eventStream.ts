/**
 * Follows /ds01/events, opened through the typed client (JupyterLab's token and
 * headers apply), and reconnects with a growing delay when the stream drops. Every new
 * connection starts with a snapshot, so nothing is missed across a reconnect.
 */
import { SSEParser } from './models/sse';
import { DS01Event } from './models/types';

export type StreamStatus = 'connecting' | 'open' | 'retrying' | 'missing' | 'stopped';

export interface IEventStreamOptions {
  /** Open the stream (DS01Client.events). */
  open: (signal: AbortSignal) => Promise<Response>;
  onEvent: (event: DS01Event) => void;
  onStatus: (status: StreamStatus, detail?: string) => void;
  minDelay?: number;
  maxDelay?: number;
}

export class EventStream {
  private controller: AbortController | null = null;
  private stopped = false;
  private delay: number;
  private timer: ReturnType<typeof setTimeout> | null = null;

  constructor(private options: IEventStreamOptions) {
    this.delay = options.minDelay ?? 1000;
  }

  start(): void {
    this.stopped = false;
    void this.connect();
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) {
      clearTimeout(this.timer);
      this.timer = null;
    }
    this.controller?.abort();
    this.options.onStatus('stopped');
  }

  /** Reconnect now (e.g. after the user asks to retry). */
  reconnect(): void {
    if (this.timer) {
      clearTimeout(this.timer);
      this.timer = null;
    }
    this.controller?.abort();
    this.delay = this.options.minDelay ?? 1000;
    this.stopped = false;
    void this.connect();
  }

  private async connect(): Promise<void> {
    const { open, onEvent, onStatus } = this.options;
    const controller = new AbortController();
    this.controller = controller;
    onStatus('connecting');
    let detail = '';
    try {
      const response = await open(controller.signal);
      if (response.status === 404) {
        onStatus('missing', 'The ds01 server extension is not enabled on this Jupyter server.');
        this.schedule(60000);
        return;
      }
      if (!response.ok || !response.body) {
        throw new Error(`HTTP ${response.status}`);
      }
      onStatus('open');
      this.delay = this.options.minDelay ?? 1000;
      const reader = response.body.getReader();
      const decoder = new TextDecoder();
      const parser = new SSEParser();
      for (;;) {
        const { value, done } = await reader.read();
        if (done) {
          break;
        }
        for (const message of parser.feed(decoder.decode(value, { stream: true }))) {
          try {
            onEvent(JSON.parse(message.data) as DS01Event);
          } catch (error) {
            console.warn('ds01: unreadable event', message, error);
          }
        }
      }
      detail = 'The event stream closed.';
    } catch (error) {
      if (controller.signal.aborted) {
        return;
      }
      detail = `The event stream failed: ${error}`;
    }
    if (!this.stopped && this.controller === controller) {
      onStatus('retrying', detail);
      this.schedule(this.delay);
      this.delay = Math.min(this.delay * 2, this.options.maxDelay ?? 30000);
    }
  }

  private schedule(ms: number): void {
    if (this.stopped) {
      return;
    }
    this.timer = setTimeout(() => {
      this.timer = null;
      void this.connect();
    }, ms);
  }
}
