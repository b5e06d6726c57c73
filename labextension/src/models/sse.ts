/**
 * Incremental parser of a server-sent event stream (text/event-stream):
 * chunks in, whole events out. Comments (keep-alives) are dropped.
 */
export interface ISSEMessage {
  event: string;
  data: string;
}

export class SSEParser {
  private buffer = '';

  /** Feed a chunk of text; return the events it completed. */
  feed(chunk: string): ISSEMessage[] {
    this.buffer += chunk.replace(/\r\n?/g, '\n');
    const out: ISSEMessage[] = [];
    let end = this.buffer.indexOf('\n\n');
    while (end >= 0) {
      const block = this.buffer.slice(0, end);
      this.buffer = this.buffer.slice(end + 2);
      const message = parseBlock(block);
      if (message) {
        out.push(message);
      }
      end = this.buffer.indexOf('\n\n');
    }
    return out;
  }
}

function parseBlock(block: string): ISSEMessage | null {
  let event = 'message';
  const data: string[] = [];
  for (const line of block.split('\n')) {
    if (!line || line.startsWith(':')) {
      continue;
    }
    const colon = line.indexOf(':');
    const field = colon < 0 ? line : line.slice(0, colon);
    const value = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '');
    if (field === 'event') {
      event = value;
    } else if (field === 'data') {
      data.push(value);
    }
  }
  return data.length ? { event, data: data.join('\n') } : null;
}
