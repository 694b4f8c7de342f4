// Placement of keys on shards by rendezvous (highest-random-weight) hashing:
// each shard scores a key with a hash of its name, the namespace and the key,
// and the highest score wins. A shard that joins takes from each of the
// others only the keys it now scores highest on, about 1/N of them; a shard
// that leaves hands its keys to the runners-up; no other key moves. The hash
// is synchronous and stable across processes, versions and platforms: the
// placement is part of the stored data.

/** The two 32-bit lanes of a hash in progress. */
type Lanes = [number, number];

/** Feeds `text`'s UTF-16 code units into `lanes` (cyrb53's loop). */
function absorb(lanes: Lanes, text: string): Lanes {
  let [h1, h2] = lanes;
  for (let i = 0; i < text.length; i++) {
    const unit = text.charCodeAt(i);
    h1 = Math.imul(h1 ^ unit, 2654435761);
    h2 = Math.imul(h2 ^ unit, 1597334677);
  }
  return [h1, h2];
}

/** Mixes both lanes into each other (cyrb53's finish). */
function finish([h1, h2]: Lanes): Lanes {
  h1 = Math.imul(h1 ^ (h1 >>> 16), 2246822507);
  h1 ^= Math.imul(h2 ^ (h2 >>> 13), 3266489909);
  h2 = Math.imul(h2 ^ (h2 >>> 16), 2246822507);
  h2 ^= Math.imul(h1 ^ (h1 >>> 13), 3266489909);
  return [h1 >>> 0, h2 >>> 0];
}

/** MurmurHash3's 32-bit finalizer: a bijection in which every bit avalanches. */
function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

const START: Lanes = [0xdeadbeef, 0x41c6ce57];

/**
 * Picks a shard for each key. Scores are 53-bit integers; equal scores (about
 * one key in 2^53) go to the shard whose name sorts first, so that the order
 * of the shards never matters.
 */
export class Rendezvous {
  #names: readonly string[];
  #seeds: Lanes[];
  /** The hash state after `namespace + "\0"`: every key starts there. */
  #prefix: Lanes;

  /**
   * @param names The shards' names, unique, without NUL.
   * @param namespace The namespace every key lives under.
   */
  constructor(names: readonly string[], namespace: string) {
    this.#names = names;
    this.#seeds = names.map((name) => finish(absorb(START, `${name}\0`)));
    this.#prefix = absorb(START, `${namespace}\0`);
  }

  /** The 53-bit score of shard `index` for a key hashed to `lanes`. */
  #score(index: number, [k1, k2]: Lanes): number {
    const [s1, s2] = this.#seeds[index];
    const high = fmix32(k1 ^ s1);
    const low = fmix32((k2 ^ s2 ^ high) >>> 0);
    return high * 2 ** 21 + (low >>> 11);
  }

  /** The index of the shard `key` lives on. */
  pick(key: string): number {
    if (this.#names.length === 1) return 0;
    const lanes = finish(absorb(this.#prefix, key));
    let best = 0;
    let bestScore = this.#score(0, lanes);
    for (let i = 1; i < this.#names.length; i++) {
      const score = this.#score(i, lanes);
      if (
        score > bestScore ||
        (score === bestScore && this.#names[i] < this.#names[best])
      ) {
        best = i;
        bestScore = score;
      }
    }
    return best;
  }
}
