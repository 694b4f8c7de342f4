// "Did you mean": the valid name nearest a mistyped one, by edit distance.

/**
 * The edit distance between `a` and `b`: insertions, deletions,
 * substitutions and swaps of two adjacent characters, each counting one
 * (the optimal string alignment distance).
 */
export function editDistance(a: string, b: string): number {
  const rows = a.length + 1;
  const cols = b.length + 1;
  const d: number[][] = Array.from({ length: rows }, (_, i) => {
    const row = new Array<number>(cols).fill(0);
    row[0] = i;
    return row;
  });
  for (let j = 0; j < cols; j++) d[0][j] = j;
  for (let i = 1; i < rows; i++) {
    for (let j = 1; j < cols; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      d[i][j] = Math.min(
        d[i - 1][j] + 1,
        d[i][j - 1] + 1,
        d[i - 1][j - 1] + cost,
      );
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) {
        d[i][j] = Math.min(d[i][j], d[i - 2][j - 2] + 1);
      }
    }
  }
  return d[rows - 1][cols - 1];
}

/**
 * The name of `names` nearest `word` (case aside), when it is close enough
 * to be a likely typo: at most a third of the longer name's characters
 * apart, and at least one. `undefined` when none is.
 */
export function nearest(
  word: string,
  names: readonly string[],
): string | undefined {
  let best: string | undefined;
  let bestDistance = Infinity;
  const lower = word.toLowerCase();
  for (const name of names) {
    const distance = editDistance(lower, name.toLowerCase());
    const limit = Math.max(
      1,
      Math.floor(Math.max(word.length, name.length) / 3),
    );
    if (distance <= limit && distance < bestDistance) {
      best = name;
      bestDistance = distance;
    }
  }
  return best;
}
