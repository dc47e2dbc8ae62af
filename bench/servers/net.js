// The net floor: a hub on `node:net` sockets with just enough HTTP/1.1 for the load generator, no
// library and no feature (no history, ids, access checks, limits, timeouts or error answers). Not
// a server anyone should deploy: it is the least a Node process pays per event for the socket
// layer alone (a 'data' event per read, a `socket.write()` per write), the floor under any
// JavaScript hub, to set beside nginx + nchan (C) in BENCHMARKS.md.
//
//   node bench/servers/net.js [-H host] [-P port]
//
// Routes (the listener's): GET /poll/<token> opens a chunked stream (any number per token);
// POST /<action>/<token> with a Content-Length sends the body as `event: <action>` with an
// increasing `id:` to every stream of the token, and answers 200 with a small JSON body (404 when
// there is none). Requests may arrive in pieces or pipelined. Prints `listening on <url>` to stderr
// once bound; SIGTERM/SIGINT exit at once.
import net from 'node:net';
import { parseArgs } from 'node:util';

const { values } = parseArgs({
  options: {
    host: { type: 'string', short: 'H', default: '127.0.0.1' },
    port: { type: 'string', short: 'P', default: '0' },
  },
});

const STREAM_HEAD =
  'HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n' +
  'Connection: keep-alive\r\nTransfer-Encoding: chunked\r\n\r\n';
const NOT_CONNECTED =
  'HTTP/1.1 404 Not Found\r\nContent-Type: text/plain\r\nContent-Length: 23\r\n\r\nTarget is not connected';

/** token -> the sockets streaming it */
const streams = new Map();
let nextId = 0;

/** Reads the requests of one connection; `pending` holds a request not complete yet. */
function onConnection(socket) {
  socket.setNoDelay(true);
  let pending = '';
  socket.on('data', (chunk) => {
    let text = pending === '' ? chunk.latin1Slice(0, chunk.length) : pending + chunk.latin1Slice();
    let at = 0;
    for (;;) {
      const headEnd = text.indexOf('\r\n\r\n', at);
      if (headEnd === -1) break;
      const space = text.indexOf(' ', at);
      const targetEnd = text.indexOf(' ', space + 1);
      const slash = text.indexOf('/', space + 2);
      const action = text.slice(space + 2, slash);
      const token = text.slice(slash + 1, targetEnd);
      if (text.charCodeAt(at) === 0x47 /* G */) {
        at = headEnd + 4;
        socket.write(STREAM_HEAD);
        let set = streams.get(token);
        if (set === undefined) streams.set(token, (set = new Set()));
        set.add(socket);
        socket.once('close', () => set.delete(socket));
        continue;
      }
      const head = text.slice(at, headEnd).toLowerCase();
      const lengthAt = head.indexOf('content-length:') + 15;
      const length = Number.parseInt(
        head.slice(lengthAt, head.indexOf('\r\n', lengthAt) >>> 0),
        10,
      );
      if (text.length < headEnd + 4 + length) break;
      const body = text.slice(headEnd + 4, headEnd + 4 + length);
      at = headEnd + 4 + length;
      publish(socket, action, token, body);
    }
    pending = at === text.length ? '' : text.slice(at);
  });
  socket.on('error', () => {});
}

function publish(socket, action, token, body) {
  const set = streams.get(token);
  if (set === undefined || set.size === 0) {
    socket.write(NOT_CONNECTED);
    return;
  }
  const id = ++nextId;
  const block = `id: ${id}\nevent: ${action}\ndata: ${body}\n\n`;
  const framed = `${Buffer.byteLength(block).toString(16)}\r\n${block}\r\n`;
  // One encoding for a fan-out, as any hub would; one subscriber writes the string.
  const bytes = set.size > 1 ? Buffer.from(framed) : framed;
  for (const stream of set) stream.write(bytes);
  const reply = `{"token":"${token}","id":${id},"subscribers":${set.size}}`;
  socket.write(
    `HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: ${reply.length}\r\n\r\n${reply}`,
  );
}

const server = net.createServer(onConnection);
server.listen(Number(values.port), values.host, () => {
  const { address, port } = server.address();
  process.stderr.write(`listening on http://${address}:${port}/\n`);
});
for (const signal of ['SIGTERM', 'SIGINT']) process.on(signal, () => process.exit(0));
