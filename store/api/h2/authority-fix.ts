import { Duplex } from 'node:stream';
import type { Socket } from 'node:net';
import type { Logger } from 'pino';
import { HpackDecoder, encodeLiterals, type HeaderList } from './hpack.js';
import {
  CLIENT_PREFACE, FLAG, FRAME_TYPE, FrameError, FrameReader, encodeFrame, headerBlockFrames, headersFragment, type Frame,
} from './frames.js';

/** An empty SETTINGS frame: all defaults. A valid server preface on its own. */
const EMPTY_SETTINGS = encodeFrame(FRAME_TYPE.settings, 0, 0, Buffer.alloc(0));
/** A client that sends no request this long after connecting is handed over as it is. */
const FIRST_REQUEST_WAIT_MS = 2_000;
/** A client that does not acknowledge our SETTINGS this long is not an HTTP/2 client. */
const ACK_WAIT_MS = 10_000;

/**
 * etcdctl 3.4 (grpc-go) sends `:authority: http://host:port` for calls to one endpoint (defrag,
 * endpoint status and hashkv, move-leader, alarm); nghttp2, under Node's HTTP/2, resets such a
 * stream before grpc-js sees it, while etcd answers it. So before a plain HTTP/2 connection goes
 * to grpc-js, its first request is looked at:
 *
 * - We answer the client's preface with an empty SETTINGS ourselves (grpc-go sends no request
 *   before the server's preface), and drop the client's acknowledgement of it (Node would treat
 *   an acknowledgement it did not ask for as a protocol error). Node's own SETTINGS follow.
 * - If the first request's :authority names no scheme (every other client), the socket itself is
 *   handed to grpc-js with what was read: no cost after the first request.
 * - Otherwise every header block the client sends on that connection is decoded (with a decoder
 *   that follows the client's dynamic table), its :authority cut to host:port, and re-encoded as
 *   plain literals (so the server's decoder needs no table state of ours); other frames pass as
 *   they are.
 */
export function serveHttp2(socket: Socket, inject: (connection: Duplex) => void, log: Logger): void {
  const reader = new FrameReader();
  const decoder = new HpackDecoder();
  /** Frames read so far, in order, but for the dropped acknowledgement. */
  const frames: Frame[] = [];
  let preface = Buffer.alloc(0);
  let isPrefaceRead = false;
  let isAckDropped = false;
  /** The first header block: how many frames end it (in `frames`), and what it says. */
  let first: { end: number; headers: HeaderList } | null = null;
  let firstStart = -1;
  let isDecided = false;
  socket.write(EMPTY_SETTINGS);

  const fail = (err: unknown): void => {
    log.debug({ err }, 'HTTP/2 connection refused before grpc-js');
    socket.destroy();
  };
  const ackTimer = setTimeout(() => { if (!isAckDropped) socket.destroy(); }, ACK_WAIT_MS);
  const idleTimer = setTimeout(() => decide(), FIRST_REQUEST_WAIT_MS);

  const onData = (chunk: Buffer): void => {
    try {
      let data = chunk;
      if (!isPrefaceRead) {
        preface = Buffer.concat([preface, data]);
        if (preface.length < CLIENT_PREFACE.length) return;
        if (!preface.subarray(0, CLIENT_PREFACE.length).equals(CLIENT_PREFACE)) throw new FrameError('not an HTTP/2 preface');
        isPrefaceRead = true;
        data = preface.subarray(CLIENT_PREFACE.length);
      }
      for (const frame of reader.push(data)) {
        if (!isAckDropped && frame.type === FRAME_TYPE.settings && (frame.flags & FLAG.ack) !== 0) {
          isAckDropped = true;
          continue;
        }
        frames.push(frame);
        if (first !== null) continue;
        if (firstStart < 0 && frame.type === FRAME_TYPE.headers) firstStart = frames.length - 1;
        if (firstStart >= 0 && (frame.flags & FLAG.endHeaders) !== 0) {
          first = { end: frames.length, headers: decoder.decode(blockOf(frames.slice(firstStart))) };
        }
      }
      if (isAckDropped && first !== null) decide();
    } catch (err) {
      fail(err);
    }
  };

  const decide = (): void => {
    if (isDecided || !isAckDropped) return;
    isDecided = true;
    clearTimeout(idleTimer);
    clearTimeout(ackTimer);
    socket.removeListener('data', onData);
    socket.pause();
    const authority = first?.headers.find(([name]) => name === ':authority')?.[1] ?? '';
    if (!authority.includes('://')) {
      // The common case: grpc-js gets the socket, and the bytes read so far, as they were.
      socket.unshift(Buffer.concat([CLIENT_PREFACE, ...frames.map((f) => f.raw), reader.rest()]));
      inject(socket);
      return;
    }
    log.debug({ authority }, 'HTTP/2 client names a scheme in :authority; its header blocks are rewritten');
    const translator = new BlockTranslator(decoder);
    const known = first;
    const head = [
      CLIENT_PREFACE,
      ...translator.translate(frames.slice(0, firstStart)),
      ...rewriteBlock(frames.slice(firstStart, known?.end ?? firstStart), known?.headers ?? []),
      ...translator.translate(frames.slice(known?.end ?? firstStart)),
    ];
    rewriteConnection(socket, inject, reader, translator, head, fail);
  };

  socket.on('data', onData);
  socket.on('error', () => socket.destroy());
  socket.once('close', () => { clearTimeout(idleTimer); clearTimeout(ackTimer); });
  socket.resume();
}

/** The header block of HEADERS + CONTINUATION frames. */
function blockOf(frames: readonly Frame[]): Buffer {
  return Buffer.concat(frames.map((frame, i) => (i === 0 ? headersFragment(frame).fragment : frame.payload)));
}

/** The same header block, its :authority without a scheme, as literal HEADERS (+ CONTINUATION) frames. */
function rewriteBlock(frames: readonly Frame[], headers: HeaderList): Buffer[] {
  const head = frames[0];
  if (head === undefined) return [];
  const fixed: HeaderList = headers.map(([name, value]) => [
    name, name === ':authority' ? value.replace(/^[A-Za-z][A-Za-z0-9+.-]*:\/\//, '').replace(/\/+$/, '') : value,
  ]);
  return headerBlockFrames(head.streamId, encodeLiterals(fixed), (head.flags & FLAG.endStream) !== 0, headersFragment(head).priority);
}

/** Re-frames a client's frames: header blocks decoded (in order) and rewritten, the rest as is. */
class BlockTranslator {
  private block: Frame[] = [];

  constructor(private readonly decoder: HpackDecoder) {}

  translate(frames: readonly Frame[]): Buffer[] {
    const out: Buffer[] = [];
    for (const frame of frames) {
      if (frame.type === FRAME_TYPE.headers || this.block.length > 0) {
        this.block.push(frame);
        if ((frame.flags & FLAG.endHeaders) !== 0) {
          out.push(...rewriteBlock(this.block, this.decoder.decode(blockOf(this.block))));
          this.block = [];
        }
        continue;
      }
      out.push(frame.raw);
    }
    return out;
  }
}

/**
 * The rest of a connection whose header blocks are rewritten: grpc-js gets a Duplex; what the
 * client sends is re-framed on the way in, what the server sends goes out as it is.
 */
function rewriteConnection(
  socket: Socket, inject: (connection: Duplex) => void, reader: FrameReader, translator: BlockTranslator,
  head: readonly Buffer[], fail: (err: unknown) => void,
): void {
  const toServer = new Duplex({
    read() { socket.resume(); },
    write(chunk: Buffer, _encoding, callback) { socket.write(chunk, callback); },
    final(callback) { socket.end(); callback(); },
    destroy(err, callback) { socket.destroy(); callback(err); },
  });
  const push = (parts: readonly Buffer[]): void => {
    if (parts.length > 0 && !toServer.push(Buffer.concat(parts))) socket.pause();
  };
  push(head);
  socket.on('data', (chunk: Buffer) => {
    try {
      push(translator.translate(reader.push(chunk)));
    } catch (err) {
      fail(err);
      toServer.destroy();
    }
  });
  socket.once('end', () => toServer.push(null));
  socket.once('close', () => toServer.destroy());
  inject(toServer);
  socket.resume();
}
