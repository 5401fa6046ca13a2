// Inline SVG line charts of per-epoch metrics: no library, no build step.
"use strict";

const PALETTE = ["#2463c7", "#c2362b", "#1f8a4c", "#b7791f", "#7c3aed", "#0e7490", "#be185d", "#4d7c0f",
                 "#9a3412", "#334155"];

// The curves of the live run view: a title and the metric names (a trailing "*" takes every name with that prefix).
const CHART_GROUPS = [
  ["Success and hallucination", ["env/success_rate", "env/hallucination_rate", "eval/success_rate",
                                 "eval/hallucination_rate"]],
  ["Reward", ["env/reward_mean", "train/reward_mean", "eval/reward_mean"]],
  ["Reward terms (epoch means)", ["env/reward/*"]],
  ["KL", ["objective/kl", "update/approxkl", "ppo/policy/approxkl"]],
  ["Entropy", ["ppo/policy/entropy"]],
  ["Update kept (1) or rolled back", ["update/accepted", "update/rolled_back_kl", "update/rolled_back_nonfinite",
                                      "update/skipped"]],
  ["Time per phase (s)", ["time/rollout", "time/generation", "time/environment", "time/update/*"]],
  ["Losses", ["ppo/loss/policy", "ppo/loss/value"]],
  ["Findings per epoch", ["fuzz/findings", "fuzz/distinct_triggers"]],
];

function escapeHtml(value) {
  return String(value ?? "").replace(/[&<>"']/g, c => ({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;",
                                                          "'": "&#39;"}[c]));
}

function seriesNames(rows, patterns) {
  const names = [];
  for (const pattern of patterns) {
    const matching = pattern.endsWith("*")
      ? [...new Set(rows.flatMap(r => Object.keys(r)))].filter(k => k.startsWith(pattern.slice(0, -1))).sort()
      : [pattern];
    for (const name of matching) {
      if (!names.includes(name) && rows.some(r => typeof r[name] === "number" && isFinite(r[name]))) names.push(name);
    }
  }
  return names;
}

function formatTick(value) {
  const magnitude = Math.abs(value);
  if (magnitude !== 0 && (magnitude < 0.01 || magnitude >= 10000)) return value.toExponential(1);
  return Number(value.toFixed(magnitude < 1 ? 3 : magnitude < 100 ? 2 : 0)).toString();
}

// One chart: an <svg> with a path (class "series") per metric over the epochs, and its legend.
function lineChart(title, rows, names) {
  const width = 420, height = 200, left = 48, right = 10, top = 8, bottom = 24;
  const epochs = rows.map(r => r.epoch);
  const xs = [Math.min(...epochs), Math.max(...epochs)];
  const values = names.flatMap(n => rows.map(r => r[n]).filter(v => typeof v === "number" && isFinite(v)));
  let [low, high] = [Math.min(...values), Math.max(...values)];
  if (low === high) { low -= 0.5; high += 0.5; }
  const x = e => left + (xs[1] === xs[0] ? 0.5 : (e - xs[0]) / (xs[1] - xs[0])) * (width - left - right);
  const y = v => top + (1 - (v - low) / (high - low)) * (height - top - bottom);
  const parts = [`<svg viewBox="0 0 ${width} ${height}" role="img" aria-label="${escapeHtml(title)}">`];
  for (let i = 0; i <= 4; i++) {
    const v = low + (high - low) * i / 4;
    parts.push(`<line class="gridline" x1="${left}" x2="${width - right}" y1="${y(v)}" y2="${y(v)}"/>`,
               `<text x="${left - 4}" y="${y(v) + 3}" text-anchor="end">${formatTick(v)}</text>`);
  }
  parts.push(`<line class="axis" x1="${left}" x2="${left}" y1="${top}" y2="${height - bottom}"/>`,
             `<line class="axis" x1="${left}" x2="${width - right}" y1="${height - bottom}" y2="${height - bottom}"/>`);
  const step = Math.max(1, Math.ceil(epochs.length / 10));
  epochs.forEach((e, i) => {
    if (i % step === 0 || i === epochs.length - 1) {
      parts.push(`<text x="${x(e)}" y="${height - 8}" text-anchor="middle">${e}</text>`);
    }
  });
  names.forEach((name, i) => {
    const color = PALETTE[i % PALETTE.length];
    const points = rows.filter(r => typeof r[name] === "number" && isFinite(r[name])).map(r => [x(r.epoch), y(r[name])]);
    const d = points.map((p, j) => `${j ? "L" : "M"}${p[0].toFixed(1)},${p[1].toFixed(1)}`).join(" ");
    parts.push(`<path class="series" data-metric="${escapeHtml(name)}" d="${d}" stroke="${color}"/>`);
    for (const [px, py] of points) parts.push(`<circle cx="${px.toFixed(1)}" cy="${py.toFixed(1)}" r="2.5" fill="${color}"/>`);
  });
  parts.push("</svg>");
  const legend = names.map((n, i) => `<span><i style="background:${PALETTE[i % PALETTE.length]}"></i>` +
                                     `${escapeHtml(n)}</span>`).join("");
  return `<div class="card chart"><h3>${escapeHtml(title)}</h3>${parts.join("")}<div class="legend">${legend}</div></div>`;
}

// Every chart of CHART_GROUPS that has data, as HTML.
function runCharts(rows) {
  if (!rows.length) return `<p class="muted">No epoch has finished yet: the curves appear after the first one.</p>`;
  const sorted = [...rows].sort((a, b) => a.epoch - b.epoch);
  return CHART_GROUPS.map(([title, patterns]) => {
    const names = seriesNames(sorted, patterns);
    return names.length ? lineChart(title, sorted, names) : "";
  }).join("");
}
