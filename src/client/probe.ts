// The multiplexing probe: GET_VALUES on a connection of its own, with a timeout. php-fpm answers
// FCGI_MPXS_CONNS=0; fcgiwrap answers only once a BEGIN_REQUEST arrives (protocol.md §5), so the pool never
// waits on this: requests go out unmultiplexed until (and unless) the answer says otherwise.
import { connect } from 'node:net';
import { Decoder } from '../wire/decoder';
import { ManagementVariable, RecordType } from '../wire/constants';
import { readPairBlock } from '../wire/pair-block';
import { encodeGetValues } from '../wire/records';
import type { ConnectTarget } from '../wire/address';

/** What the probe learned: the answers by name, or why there are none. */
export type ProbeOutcome =
  | { readonly kind: 'values'; readonly values: Record<string, string> }
  | { readonly kind: 'timeout' }
  | { readonly kind: 'unreachable' };

/** probeValues asks the backend for FCGI_MAX_CONNS, FCGI_MAX_REQS and FCGI_MPXS_CONNS; returns a cancel function. */
export function probeValues(
  target: ConnectTarget,
  timeoutMs: number,
  callback: (outcome: ProbeOutcome) => void,
): () => void {
  let done = false;
  let connected = false;
  const socket = 'path' in target ? connect({ path: target.path }) : connect({ host: target.host, port: target.port });
  const finish = (outcome: ProbeOutcome): void => {
    if (done) return;
    done = true;
    clearTimeout(timer);
    socket.destroy();
    callback(outcome);
  };
  const timer = setTimeout(() => finish(connected ? { kind: 'timeout' } : { kind: 'unreachable' }), timeoutMs);
  timer.unref();
  const decoder = new Decoder(
    {
      onRecord(type, requestId, content) {
        if (requestId === 0 && type === RecordType.GET_VALUES_RESULT)
          finish({ kind: 'values', values: readPairBlock(content).params.toObject() });
      },
      onParams() {},
      onError() {
        finish({ kind: 'timeout' });
      },
    },
    { collectParams: false },
  );
  socket.on('connect', () => {
    connected = true;
    socket.write(
      encodeGetValues([ManagementVariable.MAX_CONNS, ManagementVariable.MAX_REQS, ManagementVariable.MPXS_CONNS]),
    );
  });
  socket.on('data', (chunk: Buffer) => decoder.push(chunk));
  socket.on('error', () => {});
  // A backend that closes without answering (php-fpm resets on what it does not know) does not multiplex.
  socket.on('close', () => finish(connected ? { kind: 'timeout' } : { kind: 'unreachable' }));
  return () => {
    done = true;
    clearTimeout(timer);
    socket.destroy();
  };
}
