// Response bodies: reading one up to a bound without losing the rest.

/** Reads a body of at most `limit` bytes; a larger one comes back as a stream of the whole body. */
export async function readBounded(
  res: Response,
  limit: number,
): Promise<Uint8Array | ReadableStream<Uint8Array>> {
  const length = Number(res.headers.get("content-length") ?? NaN);
  if (length > limit && res.body) return res.body;
  if (!res.body) return new Uint8Array(0);
  const reader = res.body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  while (true) {
    const { done, value } = await reader.read();
    if (done) break;
    chunks.push(value);
    size += value.byteLength;
    if (size > limit) return resume(chunks, reader);
  }
  const body = new Uint8Array(size);
  let offset = 0;
  for (const chunk of chunks) {
    body.set(chunk, offset);
    offset += chunk.byteLength;
  }
  return body;
}

/** A stream of the chunks already read, then the rest of `reader`. */
export function resume(
  chunks: Uint8Array[],
  reader: ReadableStreamDefaultReader<Uint8Array>,
): ReadableStream<Uint8Array> {
  return new ReadableStream({
    async pull(controller) {
      const chunk = chunks.shift();
      if (chunk) return controller.enqueue(chunk);
      const { done, value } = await reader.read();
      if (done) controller.close();
      else controller.enqueue(value);
    },
    cancel: (reason) => reader.cancel(reason),
  });
}
