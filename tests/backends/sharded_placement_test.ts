// ShardedBackend's placement (backends/_sharded/rendezvous.ts): rendezvous
// hashing spreads keys evenly, ignores the order of the shards, moves only
// the keys of a shard that comes or goes, and is stable across versions.
import assert from "node:assert/strict";
import { MemoryBackend } from "../../backends/memory.ts";
import { type NamedShard, ShardedBackend } from "../../backends/sharded.ts";

/** `n` memory shards named `s0`, `s1`, ... */
function memoryShards(n: number, namespace?: string): NamedShard[] {
  return Array.from({ length: n }, (_, i) => ({
    name: `s${i}`,
    backend: new MemoryBackend({ namespace }),
  }));
}

/** Where each of `keys` lives, by shard name. */
function placement(backend: ShardedBackend, keys: string[]): string[] {
  return keys.map((key) => backend.shardOf(key).name);
}

const KEYS = Array.from({ length: 10_000 }, (_, i) => `/items/${i}?page=1`);

Deno.test("sharded placement: each of 2, 3 and 5 shards gets its share of 10,000 keys within 10 %", () => {
  for (const n of [2, 3, 5]) {
    const backend = new ShardedBackend({ shards: memoryShards(n) });
    const counts = new Map<string, number>();
    for (const name of placement(backend, KEYS)) {
      counts.set(name, (counts.get(name) ?? 0) + 1);
    }
    assert.equal(counts.size, n);
    for (const [name, count] of counts) {
      const share = count * n / KEYS.length;
      assert.ok(share > 0.9 && share < 1.1, `${n} shards: ${name} ${share}`);
    }
  }
});

Deno.test("sharded placement: the order of the shards does not matter", () => {
  const shards = memoryShards(4);
  const forward = new ShardedBackend({ shards });
  const backward = new ShardedBackend({ shards: [...shards].reverse() });
  assert.deepEqual(placement(backward, KEYS), placement(forward, KEYS));
});

Deno.test("sharded placement: adding a third shard moves about a third of the keys, all to it", () => {
  const [a, b, c] = memoryShards(3);
  const before = placement(new ShardedBackend({ shards: [a, b] }), KEYS);
  const after = placement(new ShardedBackend({ shards: [a, b, c] }), KEYS);
  let moved = 0;
  for (let i = 0; i < KEYS.length; i++) {
    if (before[i] === after[i]) continue;
    moved++;
    assert.equal(after[i], "s2", `${KEYS[i]} moved from ${before[i]}`);
  }
  assert.ok(
    moved > 0.3 * KEYS.length && moved < 0.37 * KEYS.length,
    `${moved}`,
  );
});

Deno.test("sharded placement: removing a shard moves only its keys", () => {
  const [a, b, c] = memoryShards(3);
  const before = placement(new ShardedBackend({ shards: [a, b, c] }), KEYS);
  const after = placement(new ShardedBackend({ shards: [a, c] }), KEYS);
  for (let i = 0; i < KEYS.length; i++) {
    if (before[i] !== "s1") assert.equal(after[i], before[i], KEYS[i]);
  }
});

Deno.test("sharded placement: the namespace is part of the hash, so namespaces place keys apart", () => {
  const one = new ShardedBackend({ shards: memoryShards(2, "one") });
  const two = new ShardedBackend({ shards: memoryShards(2, "two") });
  const a = placement(one, KEYS);
  const b = placement(two, KEYS);
  const same = a.filter((name, i) => name === b[i]).length;
  assert.ok(same > 0.45 * KEYS.length && same < 0.55 * KEYS.length, `${same}`);
});

Deno.test("sharded placement: keys land where they always have (the hash is stable across versions)", () => {
  // Stored entries depend on it: a changed hash would move every key.
  const backend = new ShardedBackend({ shards: memoryShards(3) });
  const keys = Array.from({ length: 16 }, (_, i) => `user:${i}`);
  assert.deepEqual(
    placement(backend, keys).join(" "),
    GOLDEN,
  );
});

const GOLDEN = "s1 s1 s0 s0 s0 s1 s2 s2 s1 s2 s2 s1 s0 s1 s2 s1";
