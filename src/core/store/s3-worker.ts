// The worker thread of S3ThreadClient: runs an S3Client (signing, HTTP, retries, health) and answers the
// requests the JS thread posts. See s3-thread-client.ts for why and for the messages.

import { parentPort, workerData } from 'node:worker_threads';
import { S3Client, type RequestPolicy } from './s3-client.js';
import type { S3Connection } from './s3-settings.js';
import type { WorkerReply, WorkerRequest } from './s3-thread-client.js';

interface Setup {
  endpoint: string;
  connection: Omit<S3Connection, 'endpoint'>;
  bucket: string;
  policy: RequestPolicy;
}

const setup = workerData as Setup;
const port = parentPort;
if (!port) throw new Error('s3-worker.ts runs only as a worker thread');
const client = new S3Client({ ...setup.connection, endpoint: new URL(setup.endpoint) }, setup.bucket, setup.policy);
client.onHealthChange((health) => port.postMessage({ health } satisfies WorkerReply));

port.on('message', (request: WorkerRequest) => {
  void answer(request).then((reply) => {
    // A body is handed over, not copied, when it has its memory to itself.
    const body = 'ok' in reply && reply.ok && reply.value instanceof Uint8Array ? reply.value : null;
    port.postMessage(reply, body && body.byteLength === body.buffer.byteLength ? [body.buffer as ArrayBuffer] : []);
  });
});

async function answer(request: WorkerRequest): Promise<WorkerReply> {
  try {
    switch (request.op) {
      case 'put':
        await client.put(request.key, Buffer.from(request.body.buffer, request.body.byteOffset, request.body.byteLength));
        return { id: request.id, ok: true, value: null, health: client.health() };
      case 'get':
        return { id: request.id, ok: true, value: await client.get(request.key), health: client.health() };
      case 'delete':
        await client.delete(request.key);
        return { id: request.id, ok: true, value: null, health: client.health() };
      case 'list':
        return { id: request.id, ok: true, value: await client.listPage(request.key, request.token, request.maxKeys), health: client.health() };
      case 'close':
        client.close();
        return { id: request.id, ok: true, value: null, health: client.health() };
    }
  } catch (err) {
    const e = err as { operation?: string; code?: string; message?: string };
    return { id: request.id, ok: false, error: { operation: e.operation ?? request.op, code: e.code ?? 'EIO', message: e.message ?? String(err) }, health: client.health() };
  }
}
