import { SSEParser } from '../sse';

describe('server-sent event parser', () => {
  it('returns whole events across chunk boundaries and drops keep-alives', () => {
    const parser = new SSEParser();
    expect(parser.feed('event: snapshot\ndata: {"type":')).toEqual([]);
    expect(parser.feed('"snapshot"}\n\n: keep-alive\n\nevent: container\r\ndata: {"a":1}\r\n\r\n')).toEqual([
      { event: 'snapshot', data: '{"type":"snapshot"}' },
      { event: 'container', data: '{"a":1}' }
    ]);
  });

  it('joins multi-line data', () => {
    expect(new SSEParser().feed('data: one\ndata: two\n\n')).toEqual([{ event: 'message', data: 'one\ntwo' }]);
  });
});
