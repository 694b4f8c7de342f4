// The benchmark's report: the goals of issue 14 as ratios measured in one
// run, the tables behind them, and a chart of both.

/** One goal: a ratio (or a count) measured in this run, and its target. */
export interface Goal {
  id: string;
  text: string;
  /** What was measured: a ratio, or a count when `atMost`. */
  value: number;
  target: number;
  /** A count that must not exceed the target, instead of a ratio to reach. */
  atMost?: boolean;
  /** How the value was computed, e.g. "12,000 / 10,000 req/s". */
  from: string;
}

/** The margin a ratio may miss its target by and still count as met. */
export const MARGIN = 0.05;

/** Whether `goal` is met (within {@linkcode MARGIN} for ratios). */
export function met(goal: Goal): boolean | undefined {
  if (!Number.isFinite(goal.value)) return undefined;
  return goal.atMost
    ? goal.value <= goal.target
    : goal.value >= goal.target * (1 - MARGIN);
}

/** A number for a table: `n/a` when unknown. */
export function fmt(n: number | undefined, digits = 0): string {
  return n !== undefined && Number.isFinite(n)
    ? n.toLocaleString("en-US", {
      maximumFractionDigits: digits,
      minimumFractionDigits: digits,
    })
    : "n/a";
}

/** A line of the goals table, as printed to the terminal. */
export function goalLine(goal: Goal): string {
  const verdict = met(goal);
  const mark = verdict === undefined ? "n/a " : verdict ? "MET " : "MISS";
  const measured = goal.atMost ? fmt(goal.value, 2) : `${fmt(goal.value, 2)}×`;
  const target = goal.atMost ? `≤ ${goal.target}` : `≥ ${goal.target}×`;
  return `${mark} ${goal.id} ${goal.text}: ${measured} (goal ${target}; ${goal.from})`;
}

/** The goals as a Markdown table. */
export function goalsTable(goals: Goal[]): string[] {
  const lines = [
    "| goal | measured | target | met | from |",
    "|---|---:|---:|:---:|---|",
  ];
  for (const goal of goals) {
    const verdict = met(goal);
    lines.push(
      `| ${goal.id}. ${goal.text} | ${
        goal.atMost ? fmt(goal.value, 2) : `${fmt(goal.value, 2)}×`
      } | ${goal.atMost ? `≤ ${goal.target}` : `≥ ${goal.target}×`} | ${
        verdict === undefined ? "n/a" : verdict ? "yes" : "**no**"
      } | ${goal.from} |`,
    );
  }
  return lines;
}

function escapeXml(text: string): string {
  return text.replaceAll("&", "&amp;").replaceAll("<", "&lt;").replaceAll(
    ">",
    "&gt;",
  );
}

/** A section of bars in the chart. */
export interface BarSection {
  title: string;
  rows: { name: string; value: number; label?: string }[];
}

/**
 * The chart: each goal's ratio as a bar against its target (a line), then
 * the throughput of every configuration, one section per workload.
 */
export function svgChart(goals: Goal[], sections: BarSection[]): string {
  const width = 820;
  const left = 330;
  const barArea = 380;
  const rowHeight = 26;
  const parts: string[] = [];
  let y = 28;
  parts.push(
    `<text x="10" y="${y}" font-size="15" font-weight="bold">Goals of issue 14: measured ratio (bar) against its target (line)</text>`,
  );
  y += 14;
  const ratios = goals.filter((goal) => !goal.atMost);
  const scale = Math.max(
    1.3,
    ...ratios.map((goal) => Number.isFinite(goal.value) ? goal.value : 0),
    ...ratios.map((goal) => goal.target),
  );
  for (const goal of goals) {
    const verdict = met(goal);
    const color = verdict === undefined
      ? "#9ca3af"
      : verdict
      ? "#16a34a"
      : "#dc2626";
    const max = goal.atMost ? Math.max(goal.target * 3, goal.value) : scale;
    const value = Number.isFinite(goal.value) ? goal.value : 0;
    const w = Math.max(1, (value / max) * barArea);
    const tx = left + (goal.target / max) * barArea;
    const label = goal.atMost
      ? `${fmt(goal.value, 2)} (≤ ${goal.target})`
      : `${fmt(goal.value, 2)}× (≥ ${goal.target}×)`;
    parts.push(
      `<text x="10" y="${y + 17}" font-size="12">${
        escapeXml(`${goal.id}. ${goal.text}`)
      }</text>`,
      `<rect x="${left}" y="${y + 5}" width="${
        w.toFixed(1)
      }" height="16" fill="${color}"/>`,
      `<line x1="${tx.toFixed(1)}" x2="${tx.toFixed(1)}" y1="${y + 1}" y2="${
        y + 25
      }" stroke="black" stroke-width="2"/>`,
      `<text x="${left + barArea + 12}" y="${y + 17}" font-size="12">${
        escapeXml(label)
      }</text>`,
    );
    y += rowHeight;
  }
  for (const section of sections) {
    y += 20;
    parts.push(
      `<text x="10" y="${y}" font-size="15" font-weight="bold">${
        escapeXml(section.title)
      }</text>`,
    );
    y += 10;
    const max = Math.max(1, ...section.rows.map((row) => row.value));
    for (const row of section.rows) {
      const w = Math.max(1, (row.value / max) * barArea);
      parts.push(
        `<text x="10" y="${y + 17}" font-size="12">${
          escapeXml(row.name)
        }</text>`,
        `<rect x="${left}" y="${y + 5}" width="${
          w.toFixed(1)
        }" height="16" fill="#3b82f6"/>`,
        `<text x="${(left + 6 + w).toFixed(1)}" y="${y + 17}" font-size="12">${
          escapeXml(row.label ?? fmt(row.value))
        }</text>`,
      );
      y += rowHeight;
    }
  }
  const height = y + 16;
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" font-family="sans-serif">
<rect width="100%" height="100%" fill="white"/>
${parts.join("\n")}
</svg>
`;
}
