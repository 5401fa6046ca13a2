// The dashboard's single page: a view per hash route, each drawn from the JSON API (see dashboard/app.py).
//   #/                                  runs
//   #/run?id=RUN                        live run view (curves, sample conversations), updated over /ws/runs/RUN
//   #/findings?id=RUN[&kind=&persona=&model=&epoch=&source=]   findings browser
//   #/conversation?id=RUN&ref=REF       conversation viewer
//   #/evaluations?id=RUN                evaluation reports side by side
"use strict";

const view = document.getElementById("view");
const crumbs = document.getElementById("crumbs");
const liveBadge = document.getElementById("live");
let socket = null;

const esc = escapeHtml;
const enc = encodeURIComponent;
const api = path => fetch(path).then(r => r.ok ? r.json() : r.json().then(b => Promise.reject(new Error(b.detail || r.statusText))));
const runApi = (id, suffix = "") => api(`/api/runs/${id.split("/").map(enc).join("/")}${suffix}`);
const link = (route, params, text) => `<a href="#/${route}?${new URLSearchParams(params)}">${text}</a>`;

function num(value, digits = 3) {
  if (value === null || value === undefined || value === "") return "–";
  if (typeof value !== "number") return esc(value);
  return Number.isInteger(value) ? String(value) : value.toFixed(digits);
}

function duration(seconds) {
  if (seconds === null || seconds === undefined) return "–";
  const s = Math.round(seconds), h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60);
  return h ? `${h} h ${m} min` : m ? `${m} min ${s % 60} s` : `${s} s`;
}

function setLive(on, text) {
  liveBadge.className = `live ${on ? "on" : "off"}`;
  liveBadge.textContent = text || "";
}

function closeSocket() {
  if (socket) { socket.onclose = null; socket.close(); socket = null; }
  setLive(false, "");
}

function comparisonTable(table) {
  if (!table) return `<span class="muted">–</span>`;
  const head = table.models.map(m => `<th class="num">${esc(m)}</th>`).join("");
  const body = table.rows.map(r => `<tr><td>${esc(r.label)}</td>${r.values.map(v => `<td class="num">${num(v)}</td>`).join("")}</tr>`).join("");
  return `<table class="comparison"><tr><th></th>${head}</tr>${body}</table>`;
}

// -- runs --------------------------------------------------------------------------------------------------------
async function showRuns() {
  crumbs.innerHTML = "";
  const data = await api("/api/runs");
  const rows = data.runs.map(run => {
    const findings = Object.entries(run.findings).map(([kind, n]) =>
      link("findings", {id: run.id, kind}, `${n} ${esc(kind)}`)).join("<br>") || `<span class="muted">none</span>`;
    const evaluations = run.evaluations.length ? link("evaluations", {id: run.id}, run.evaluations.map(esc).join(", ")) : "–";
    const epochs = run.kind === "evaluation" ? "–" : `${run.epochs}${run.iterations ? ` / ${run.iterations}` : ""}`;
    return `<tr class="run"><td>${link("run", {id: run.id}, esc(run.id))}<div class="muted">${esc(run.mode || run.kind)}` +
      `${run.base_model ? " · " + esc(run.base_model) : ""}</div></td>` +
      `<td><span class="badge ${esc(run.state)}">${esc(run.state)}</span></td><td class="num">${epochs}</td>` +
      `<td class="num" title="${esc(run.wall_source || "")}">${duration(run.wall_seconds)}</td>` +
      `<td class="num">${num(run.last["env/success_rate"], 2)}</td><td class="num">${num(run.last["env/reward_mean"])}</td>` +
      `<td>${findings}</td><td>${evaluations}</td><td>${run.final_comparison ? `<details><summary>table</summary>` +
      comparisonTable(run.final_comparison) + `</details>` : "–"}</td></tr>`;
  }).join("");
  const roots = Object.entries(data.roots).map(([label, path]) => `${esc(label)} = ${esc(path)}`).join(", ");
  view.innerHTML = `<h1>Runs</h1><p class="muted">${data.runs.length} run directories under ${roots}</p>` +
    `<table id="runs"><tr><th>run</th><th>state</th><th class="num">epochs</th><th class="num">wall time</th>` +
    `<th class="num">success</th><th class="num">reward</th><th>findings</th><th>evaluations</th>` +
    `<th>final comparison</th></tr>${rows}</table>`;
}

// -- live run view -----------------------------------------------------------------------------------------------
function sampleCard(runId, sample) {
  const outcome = sample.outcome ? `${sample.outcome.verdict} · reward ${num(sample.outcome.reward)} · verifier ` +
    `${num(sample.outcome.verifier, 2)}` : "";
  const exposed = sample.hallucinations.map(h => `<div class="claim">${esc(h.kind)}: ${esc(h.reason)}</div>`).join("");
  return `<div class="card sample"><div>${link("conversation", {id: runId, ref: sample.ref},
    `epoch ${sample.epoch}, conversation ${sample.index + 1}`)} <span class="muted">${sample.turns.length} messages · ` +
    `${esc(outcome)}</span></div><div class="muted">${esc(sample.objective)}</div>${exposed}</div>`;
}

async function showRun(params) {
  const id = params.get("id");
  crumbs.innerHTML = `/ ${esc(id)}`;
  const [run, metrics, samples] = await Promise.all([runApi(id), runApi(id, "/metrics"), runApi(id, "/conversations")]);
  const state = {rows: new Map(metrics.rows.map(r => [r.epoch, r])), samples: new Map(samples.conversations.map(s => [s.ref, s])),
                 run};
  view.innerHTML = `<h1>${esc(id)} <span id="run-state" class="badge"></span></h1><p id="run-facts" class="muted"></p>` +
    `<p>${link("findings", {id}, "findings")} · ${link("evaluations", {id}, "evaluations")}</p>` +
    `<div id="charts" class="grid"></div><h2>Final comparison</h2><div id="final"></div>` +
    `<h2>Sample conversations</h2><label>epoch <select id="epoch-pick"></select></label><div id="samples" class="samples"></div>` +
    `<h2>Config</h2><details><summary>training_config.yaml (resolved)</summary><pre>${esc(JSON.stringify(run.config, null, 1))}</pre></details>`;
  const pick = document.getElementById("epoch-pick");
  const draw = () => {
    const rows = [...state.rows.values()];
    const r = state.run;
    document.getElementById("run-state").className = `badge ${r.state}`;
    document.getElementById("run-state").textContent = r.state;
    document.getElementById("run-facts").textContent = `${r.epochs} epoch(s)${r.iterations ? ` of ${r.iterations}` : ""} · ` +
      `wall time ${duration(r.wall_seconds)} · ${r.mode || r.kind}${r.base_model ? " · " + r.base_model : ""} · ${r.path}`;
    document.getElementById("charts").innerHTML = runCharts(rows);
    document.getElementById("final").innerHTML = comparisonTable(r.final_comparison);
    const epochs = [...new Set([...state.samples.values()].map(s => s.epoch))].sort((a, b) => b - a);
    const chosen = pick.value && epochs.includes(Number(pick.value)) ? Number(pick.value) : epochs[0];
    pick.innerHTML = epochs.map(e => `<option value="${e}" ${e === chosen ? "selected" : ""}>${e}</option>`).join("");
    document.getElementById("samples").innerHTML = [...state.samples.values()].filter(s => s.epoch === chosen)
      .map(s => sampleCard(id, s)).join("") || `<p class="muted">none yet</p>`;
  };
  pick.onchange = draw;
  draw();
  closeSocket();
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  socket = new WebSocket(`${scheme}://${location.host}/ws/runs/${id.split("/").map(enc).join("/")}`);
  socket.onopen = () => setLive(true, "● live");
  socket.onclose = () => setLive(false, "○ not live (reload to reconnect)");
  socket.onmessage = event => {
    const message = JSON.parse(event.data);
    if (message.type === "metrics") message.rows.forEach(r => state.rows.set(r.epoch, r));
    else if (message.type === "conversations") message.conversations.forEach(s => state.samples.set(s.ref, s));
    else if (message.type === "state") state.run = {...state.run, ...message.run};
    else return;
    draw();
  };
}

// -- findings browser --------------------------------------------------------------------------------------------
function findingRow(id, f) {
  const where = ["model", "epoch", "persona"].filter(k => f[k] !== null).map(k => `${k} ${esc(f[k])}`).join(" · ");
  return `<tr class="finding-row"><td>${link("conversation", {id, ref: f.ref}, `turn ${f.trigger_turn ?? "?"} →`)}</td>` +
    `<td class="claim">${esc(f.claim ?? "")}</td><td class="truth">${esc(f.truth)}</td><td class="muted">${where}</td></tr>`;
}

async function showFindings(params) {
  const id = params.get("id");
  crumbs.innerHTML = `/ ${link("run", {id}, esc(id))} / findings`;
  const filters = ["kind", "persona", "model", "epoch", "source"];
  const query = new URLSearchParams(filters.filter(k => params.get(k)).map(k => [k, params.get(k)]));
  const data = await runApi(id, `/findings?${query}`);
  const byId = new Map(data.findings.map(f => [f.id, f]));
  const selects = filters.map(name => `<label>${name}<select data-filter="${name}"><option value="">all</option>` +
    data.facets[name].map(v => `<option ${params.get(name) === v ? "selected" : ""}>${esc(v)}</option>`).join("") +
    `</select></label>`).join("");
  const groups = data.groups.map(group => `<section class="group"><h2>${esc(group.kind)} <span class="muted">` +
    `(${group.count}; counts as ${esc(group.counts_as)})</span></h2>` + group.triggers.map(t =>
      `<div class="trigger"><div><b>“${esc(byId.get(t.ids[0]).trigger_message ?? "(no user message)")}”</b> ` +
      `<span class="muted">${t.count}×</span></div><table><tr><th>turn</th><th>the agent claimed</th>` +
      `<th>the database holds</th><th></th></tr>${t.ids.map(i => findingRow(id, byId.get(i))).join("")}</table></div>`).join("") +
    `</section>`).join("");
  view.innerHTML = `<h1>Findings of ${esc(id)}</h1><p class="muted">${data.shown} of ${data.total} findings, grouped by ` +
    `kind and triggering user message</p><div class="filters">${selects}</div>${groups || "<p>No finding matches.</p>"}`;
  view.querySelectorAll("select[data-filter]").forEach(select => select.onchange = () => {
    const next = new URLSearchParams({id});
    view.querySelectorAll("select[data-filter]").forEach(s => { if (s.value) next.set(s.dataset.filter, s.value); });
    location.hash = `#/findings?${next}`;
  });
}

// -- conversation viewer -----------------------------------------------------------------------------------------
function findingBox(f, focus) {
  return `<div class="finding ${focus ? "focused" : ""}" ${f.id ? `id="f-${esc(f.id)}"` : ""}><b>${esc(f.kind)}</b>` +
    `<div class="row"><span class="muted">claim</span><span class="claim">${esc(f.claim ?? "(see the verifier)")}</span></div>` +
    `<div class="row"><span class="muted">database</span><span class="truth">${esc(f.truth)}</span></div>` +
    `<div class="row"><span class="muted">verifier</span><span>${esc(f.reason)}</span></div></div>`;
}

function turnDetails(t) {  // the agent's tool calls under its answer, a user turn's reward terms under the message
  const calls = (t.tool_calls || []).map(call => `<div class="tool-call">⚙ ${esc(call)}</div>`).join("");
  const terms = t.reward_terms ? Object.entries(t.reward_terms) : null;
  const reward = terms ? `<div class="reward-terms">reward: ${terms.length ? terms.map(([name, value]) =>
    `<span class="${value < 0 ? "claim" : "truth"}">${esc(name)} ${value > 0 ? "+" : ""}${num(value, 3)}</span>`).join(", ")
    : "no immediate terms"}</div>` : "";
  return calls || reward ? `<div class="details">${calls}${reward}</div>` : "";
}

async function showConversation(params) {
  const id = params.get("id"), ref = params.get("ref");
  crumbs.innerHTML = `/ ${link("run", {id}, esc(id))} / ${link("findings", {id}, "findings")} / conversation`;
  const c = await runApi(id, `/conversations/${enc(ref)}`);
  const facts = ["persona", "model", "epoch"].filter(k => c[k] !== null).map(k => `${k} ${esc(c[k])}`);
  if (c.outcome) facts.push(`${esc(c.outcome.verdict)}, reward ${num(c.outcome.reward)}, verifier ${num(c.outcome.verifier, 2)}`);
  const turns = c.turns.map(t => {
    const found = t.findings || [];
    const focus = found.some(f => f.id && f.id === c.focus);
    return `<div class="turn ${esc(t.role)} ${found.length ? "hallucinated" : ""} ${focus ? "focus" : ""}" id="turn-${t.index}">` +
      `<div class="role">${esc(t.role || "?")}</div><div class="bubble">${esc(t.text)}${turnDetails(t)}</div>` +
      `<div>${found.map(f => findingBox(f, f.id === c.focus)).join("")}</div></div>`;
  }).join("");
  const unplaced = c.unplaced.length ? `<h2>Exposed, turn not recorded</h2>${c.unplaced.map(f => findingBox(f, false)).join("")}` : "";
  view.innerHTML = `<h1>${esc(c.title)}</h1><p>${esc(c.objective)}</p><p class="muted">${facts.join(" · ")} · ` +
    `${c.finding_count} finding(s)</p>${unplaced}<div class="turns">${turns}</div>` +
    Object.entries(c.not_recorded).map(([what, why]) => `<p class="muted">${esc(what)}: ${esc(why)}.</p>`).join("");
  const target = view.querySelector(".turn.focus") || view.querySelector(".turn.hallucinated");
  if (target) target.scrollIntoView({block: "center"});
}

// -- evaluations -------------------------------------------------------------------------------------------------
async function showEvaluations(params) {
  const id = params.get("id");
  crumbs.innerHTML = `/ ${link("run", {id}, esc(id))} / evaluations`;
  const data = await runApi(id, "/evaluations");
  view.innerHTML = `<h1>Evaluations of ${esc(id)}</h1>` + (data.evaluations.map(e => {
    const head = e.models.map(m => `<th class="num">${esc(m)}</th>`).join("");
    const rows = e.rows.map(r => `<tr><td>${esc(r.metric)}</td>${r.values.map(v => `<td class="num">${num(v)}</td>`).join("")}</tr>`).join("");
    const samples = e.samples.map(s => `<div><b>${esc(s.model)}</b>: ${s.refs.map((ref, i) =>
      link("conversation", {id, ref}, `conversation ${i + 1}`)).join(" · ") || "none"}</div>`).join("");
    return `<h2>${esc(e.source)} <span class="muted">${esc(e.mode || "")}</span></h2>` +
      (e.command ? `<p class="muted"><code>${esc(e.command)}</code></p>` : "") +
      `<table class="evaluation"><tr><th>metric</th>${head}</tr>${rows}</table><h3>Sample conversations</h3>${samples}`;
  }).join("") || "<p>This run has no evaluation report.</p>");
}

// -- routing -----------------------------------------------------------------------------------------------------
const ROUTES = {"": showRuns, run: showRun, findings: showFindings, conversation: showConversation,
                evaluations: showEvaluations};

async function route() {
  const [path, query] = location.hash.replace(/^#\/?/, "").split("?");
  const show = ROUTES[path] || showRuns;
  if (show !== showRun) closeSocket();
  delete view.dataset.rendered;
  try {
    await show(new URLSearchParams(query || ""));
  } catch (error) {
    view.innerHTML = `<p class="claim">error: ${esc(error.message)}</p>`;
  }
  view.dataset.rendered = path || "runs";  // the view is drawn (tests wait for this)
}

window.addEventListener("hashchange", route);
route();
