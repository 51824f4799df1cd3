// The convlens workbench page. Every number comes from the server's analysis (the HTTP API
// in docs/web.md); this file only lays them out. Text from the user or the server is always
// inserted as text (textContent, createElement), never as HTML.
"use strict";

const DEBOUNCE_MS = 200;
// Starting values of new symbols: guesses to begin with, each changed with its slider.
const SYMBOL_DEFAULTS = { k: 3, K: 3, kernel: 3, s: 1, stride: 1, p: 1, d: 1, NF: 32, NC: 24, C: 3, H: 32, W: 32 };
const FALLBACK_SYMBOL_VALUE = 16;

const state = {
  symbols: [],          // symbol names the description uses, in order
  values: {},           // symbol → integer value
  report: null,         // the last /api/workbench answer
  selected: null,       // layer index shown in the derivation panel, "memory" or null
  rfLayer: null,        // layer index whose receptive field is drawn
  library: [],
  image: null,          // the sample image, loaded once
  runs: null,
};

// ---------------------------------------------------------------------------------- helpers

const $ = (id) => document.getElementById(id);

function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attributes)) {
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else if (key.startsWith("data-")) node.setAttribute(key, value);
    else node[key] = value;
  }
  for (const child of children) node.append(child);
  return node;
}

function svg(tag, attributes = {}) {
  const node = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [key, value] of Object.entries(attributes)) node.setAttribute(key, String(value));
  return node;
}

function tex(latex, node, display = false) {
  if (window.katex) {
    window.katex.render(latex, node, { throwOnError: false, displayMode: display, output: "htmlAndMathml" });
  } else {
    node.textContent = latex;
  }
  return node;
}

function debounce(fn, ms) {
  let timer = null;
  return (...args) => {
    clearTimeout(timer);
    timer = setTimeout(() => fn(...args), ms);
  };
}

function setStatus(text) {
  $("status").textContent = text;
}

class ApiError extends Error {
  constructor(body, status) {
    super(body.error || `HTTP ${status}`);
    this.body = body;
    this.status = status;
  }
}

async function post(path, body) {
  const response = await fetch(path, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(body),
  });
  if (!response.ok) {
    let error = { error: `HTTP ${response.status}` };
    try { error = await response.json(); } catch (_) { /* not JSON: keep the status */ }
    throw new ApiError(error, response.status);
  }
  return response;
}

function download(text, filename, type) {
  const url = URL.createObjectURL(new Blob([text], { type }));
  const link = el("a", { href: url, download: filename });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}

// A POST whose answers are latest-wins: one to an older request than the last one sent
// comes back undefined (dropped); otherwise { value } or { error }.
function latestPost(path) {
  let sequence = 0;
  return async (body) => {
    const mine = ++sequence;
    let result;
    try {
      result = { value: await (await post(path, body)).json() };
    } catch (error) {
      result = { error };
    }
    return mine === sequence ? result : undefined;
  };
}

// ------------------------------------------------------------------------------------ editor

// A textarea over a backdrop that repeats its text and marks the error, beside line numbers.
class Editor {
  constructor(root, onChange) {
    this.root = root;
    this.gutter = el("div", { class: "gutter", ariaHidden: "true" });
    this.backdrop = el("pre", { class: "backdrop", ariaHidden: "true" });
    this.text = el("textarea", {
      class: "source", id: root.dataset.textarea, spellcheck: false, autocomplete: "off",
    });
    this.text.setAttribute("wrap", "off");
    this.text.setAttribute("aria-label", root.dataset.label);
    root.append(this.gutter, el("div", { class: "editor-body" }, this.backdrop, this.text));
    this.error = null;
    this.text.addEventListener("input", () => { this.paint(); onChange(); });
    this.text.addEventListener("scroll", () => this.sync());
  }

  get value() { return this.text.value; }

  set value(text) {
    this.text.value = text;
    this.paint();
  }

  showError(line, column) {
    this.error = line ? { line, column: column || 1 } : null;
    this.paint();
  }

  // The backdrop repeats the text behind the (transparent) textarea, marking the error.
  paint() {
    const lines = this.text.value.split("\n");
    this.backdrop.replaceChildren();
    this.gutter.replaceChildren();
    lines.forEach((line, i) => {
      const number = i + 1;
      const isError = this.error && this.error.line === number;
      const gutterLine = el("div", { text: String(number), class: isError ? "error-line" : "" });
      this.gutter.append(gutterLine);
      if (!isError) {
        this.backdrop.append(line + "\n");
        return;
      }
      const column = Math.min(Math.max(this.error.column - 1, 0), line.length);
      const mark = el("mark", { class: "error-line" });
      mark.append(line.slice(0, column));
      mark.append(el("span", { class: "error-column", text: line.slice(column, column + 1) || " " }));
      mark.append(line.slice(column + 1));
      this.backdrop.append(mark, "\n");
    });
    this.sync();
  }

  sync() {
    this.backdrop.scrollTop = this.text.scrollTop;
    this.backdrop.scrollLeft = this.text.scrollLeft;
    this.gutter.scrollTop = this.text.scrollTop;
  }
}

function showError(box, editor, error, prefix = "") {
  if (!error) {
    box.hidden = true;
    box.textContent = "";
    editor.showError(null);
    return;
  }
  const body = error.body || { error: String(error.message || error) };
  const where = body.line ? `line ${body.line}, column ${body.column}: ` : "";
  box.textContent = prefix + where + body.error;
  box.hidden = false;
  editor.showError(body.line, body.column);
}

// --------------------------------------------------------------------------------- requests

function options() {
  const batch = parseInt($("batch").value, 10);
  return {
    convention: $("convention").value,
    batch: Number.isInteger(batch) && batch > 0 ? batch : 1,
    dtype: $("dtype").value,
    optimizer: $("optimizer").value,
  };
}

function analysisBody(description = editorA.value) {
  const set = {};
  for (const name of state.symbols) set[name] = state.values[name];
  return { description, set, ...options() };
}

const requestWorkbench = latestPost("/api/workbench");

async function analyse() {
  setStatus("analysing…");
  const answer = await requestWorkbench(analysisBody());
  if (!answer) return;  // a newer request is on its way
  if (answer.error) {
    setStatus("");
    showError($("error"), editorA, answer.error);
    $("report").classList.add("stale");
    return;
  }
  const report = answer.value;
  updateSymbols(report.symbols);
  if (report.rows === null) {
    // Symbols without values in the request: each has one now, so ask again with them.
    analyse();
    return;
  }
  showError($("error"), editorA, null);
  state.report = report;
  renderReport(report);
  setStatus(`${report.rows.length} layers`);
  refreshDerivation();
  refreshReceptiveField();
  if (!$("tab-compare").hidden) runCompare();
}

const analyseSoon = debounce(analyse, DEBOUNCE_MS);

// ---------------------------------------------------------------------------------- symbols

// New symbols get a starting value (a value set before is kept for a symbol that returns).
function updateSymbols(names) {
  for (const name of names) {
    if (!(name in state.values)) state.values[name] = SYMBOL_DEFAULTS[name] ?? FALLBACK_SYMBOL_VALUE;
  }
  const changed = names.join(",") !== state.symbols.join(",");
  state.symbols = names;
  if (changed) renderSymbols();
}

function renderSymbols() {
  const list = $("symbol-list");
  list.replaceChildren();
  $("symbols-hint").hidden = state.symbols.length > 0;
  for (const name of state.symbols) {
    const value = state.values[name];
    const slider = el("input", {
      type: "range", min: 1, max: Math.max(64, 2 * value), value, id: `symbol-${name}-slider`,
    });
    const field = el("input", { type: "number", min: 1, value, id: `symbol-${name}` });
    const set = (text, from) => {
      const number = parseInt(text, 10);
      if (!Number.isInteger(number) || number < 1) return;
      state.values[name] = number;
      if (from !== slider) {
        if (number > Number(slider.max)) slider.max = 2 * number;
        slider.value = number;
      }
      if (from !== field) field.value = number;
      analyseSoon();
    };
    slider.addEventListener("input", () => set(slider.value, slider));
    field.addEventListener("input", () => set(field.value, field));
    list.append(el("div", { class: "symbol", "data-symbol": name },
      el("label", { htmlFor: field.id, text: name }), slider, field));
  }
}

// ------------------------------------------------------------------------------------ table

function renderReport(report) {
  const table = $("report");
  table.classList.remove("stale");
  const head = el("tr");
  report.columns.forEach((c) => head.append(el("th", { text: c.title, class: c.numeric ? "num" : "" })));
  table.tHead.replaceChildren(head);
  const body = table.tBodies[0];
  body.replaceChildren();
  let anyClosed = false;
  for (const row of report.rows) {
    const tr = el("tr", { tabIndex: 0, class: "layer", "data-index": String(row.index) });
    row.cells.forEach((text, i) => {
      const td = el("td", { class: report.columns[i].numeric ? "num" : "" }, el("div", { text }));
      const closed = row.closed && row.closed[i];
      if (closed) {
        anyClosed = true;
        td.append(tex(closed, el("div", { class: "closed" })));
      }
      tr.append(td);
    });
    if (row.index === state.selected) tr.classList.add("selected");
    const open = () => selectLayer(row.index);
    tr.addEventListener("click", open);
    tr.addEventListener("keydown", (e) => { if (e.key === "Enter") open(); });
    body.append(tr);
  }
  const total = el("tr", { tabIndex: 0, class: "total" });
  report.totals.cells.forEach((text, i) => {
    const td = el("th", { class: report.columns[i].numeric ? "num" : "" }, el("div", { text }));
    const closed = report.totals.closed && report.totals.closed[i];
    if (closed) td.append(tex(closed, el("div", { class: "closed" })));
    total.append(td);
  });
  total.addEventListener("click", () => selectLayer("memory"));
  table.tFoot.replaceChildren(total);
  $("closed-hint").hidden = !anyClosed;
  if (report.closed_forms.startsWith("unavailable")) {
    $("closed-hint").hidden = false;
    $("closed-hint").textContent = `Closed forms ${report.closed_forms}`;
  } else {
    $("closed-hint").textContent = "Beneath a number: its closed form in the symbols.";
  }

  const summary = $("summary");
  summary.replaceChildren();
  for (const item of report.summary) {
    const dd = el("dd", {}, el("span", { text: item.value }));
    if (item.closed) dd.append(el("span", { class: "closed-text", text: `= ${item.closed}` }));
    summary.append(el("dt", { text: item.label }), dd);
  }
  const warnings = $("warnings");
  warnings.replaceChildren(...report.warnings.map((w) => el("li", { text: w })));
  renderLayerChoice(report);
}

// ------------------------------------------------------------------------------- derivation

function selectLayer(index) {
  state.selected = index;
  for (const tr of $("report").tBodies[0].rows) {
    tr.classList.toggle("selected", tr.dataset.index === String(index));
  }
  if (index !== "memory") {
    state.rfLayer = index;
    $("rf-layer").value = String(index);
    refreshReceptiveField(true);
  }
  refreshDerivation();
}

const requestExplain = latestPost("/api/explain");

async function refreshDerivation() {
  if (state.selected === null) return;
  const layer = state.selected === "memory" ? null : state.selected;
  const answer = await requestExplain({ ...analysisBody(), layer });
  if (!answer) return;
  const list = $("derivation-steps");
  list.replaceChildren();
  $("derivation-hint").hidden = true;
  if (answer.error) {
    $("derivation-title").textContent = answer.error.message;
    return;
  }
  $("derivation-title").textContent = answer.value.title;
  const notes = answer.value.notes || [];
  if (!answer.value.steps.length && !notes.length) {
    list.append(el("li", { text: "nothing to derive for this layer" }));
  }
  for (const step of answer.value.steps) {
    const item = el("li", { class: "step", "data-topic": step.topic });
    item.append(el("div", { class: "quantity", text: step.quantity }));
    item.append(tex(step.latex, el("div", { class: "math" }), true));
    if (step.note) item.append(el("div", { class: "note", text: step.note }));
    list.append(item);
  }
  for (const note of notes) list.append(el("li", { class: "derivation-note", text: note }));
}

// -------------------------------------------------------------------------- receptive field

function renderLayerChoice(report) {
  const select = $("rf-layer");
  const previous = state.rfLayer;
  select.replaceChildren();
  for (const row of report.rows) {
    const spatial = row.output.length === 3;
    select.append(el("option", {
      value: String(row.index), text: `${row.index} ${row.name} (${row.cells[3]})`, disabled: !spatial,
    }));
  }
  const spatialRows = report.rows.filter((r) => r.output.length === 3);
  const keep = spatialRows.find((r) => r.index === previous);
  const chosen = keep || spatialRows[spatialRows.length - 1];
  state.rfLayer = chosen ? chosen.index : null;
  if (chosen) select.value = String(chosen.index);
}

// The slider for one output axis; on a new layer (or a new size) it starts at the centre.
function rfSlider(id, size, recentre) {
  const slider = $(id);
  const max = Math.max(0, (Number.isInteger(size) ? size : 1) - 1);
  const resized = Number(slider.max) !== max;
  slider.max = String(max);
  if (recentre || resized) slider.value = String(Math.floor(max / 2));
  $(`${id}-value`).textContent = slider.value;
  return Number(slider.value);
}

const requestField = latestPost("/api/receptive-field");

async function refreshReceptiveField(recentre = false) {
  const report = state.report;
  if (!report || state.rfLayer === null) return;
  const row = report.rows.find((r) => r.index === state.rfLayer);
  if (!row || row.output.length !== 3) return;
  const y = rfSlider("rf-y", row.output[1], recentre);
  const x = rfSlider("rf-x", row.output[2], recentre);
  const answer = await requestField({ ...analysisBody(), layer: state.rfLayer, y, x });
  if (!answer) return;
  if (answer.error) {
    $("rf-info").textContent = answer.error.message;
    $("rf-rect").setAttribute("visibility", "hidden");
    return;
  }
  drawField(answer.value);
}

function loadImage() {
  if (state.image) return Promise.resolve(state.image);
  return new Promise((resolve, reject) => {
    const image = new Image();
    image.onload = () => { state.image = image; resolve(image); };
    image.onerror = reject;
    image.src = "/static/sample.jpg";
  });
}

// The sample image at the input's size (grey for one channel), as the network sees it.
async function inputImage(channels, height, width) {
  const image = await loadImage();
  const canvas = el("canvas", { width, height });
  const context = canvas.getContext("2d");
  context.drawImage(image, 0, 0, width, height);
  if (channels === 1) {
    const pixels = context.getImageData(0, 0, width, height);
    const d = pixels.data;
    for (let i = 0; i < d.length; i += 4) {
      const grey = 0.299 * d[i] + 0.587 * d[i + 1] + 0.114 * d[i + 2];
      d[i] = d[i + 1] = d[i + 2] = grey;
    }
    context.putImageData(pixels, 0, 0);
  }
  return canvas.toDataURL("image/png");
}

let imageKey = "";

async function drawField(field) {
  const [channels, height, width] = field.input;
  const view = $("rf-view");
  const key = field.input.join("x");
  if (key !== imageKey) {
    const url = await inputImage(channels, height, width);
    const image = $("rf-image");
    image.setAttribute("href", url);
    image.setAttribute("width", width);
    image.setAttribute("height", height);
    imageKey = key;
  }
  const border = $("rf-border");
  border.setAttribute("x", 0); border.setAttribute("y", 0);
  border.setAttribute("width", width); border.setAttribute("height", height);
  const rect = $("rf-rect");
  let lo = [0, 0], hi = [height - 1, width - 1];
  if (field.rows && field.columns) {
    lo = [field.rows[0], field.columns[0]];
    hi = [field.rows[1], field.columns[1]];
    rect.setAttribute("x", lo[1]);
    rect.setAttribute("y", lo[0]);
    rect.setAttribute("width", hi[1] - lo[1] + 1);
    rect.setAttribute("height", hi[0] - lo[0] + 1);
    rect.setAttribute("visibility", "visible");
    const centre = $("rf-centre");
    centre.setAttribute("cx", (lo[1] + hi[1] + 1) / 2);
    centre.setAttribute("cy", (lo[0] + hi[0] + 1) / 2);
    centre.setAttribute("r", Math.max(0.5, Math.max(height, width) / 128));
  } else {
    rect.setAttribute("visibility", "hidden");
  }
  // The view shows the image and all of the field, padding included, with a small margin.
  const margin = Math.max(1, Math.round(Math.max(height, width) / 20));
  const top = Math.min(0, lo[0]) - margin, left = Math.min(0, lo[1]) - margin;
  const bottom = Math.max(height, hi[0] + 1) + margin, right = Math.max(width, hi[1] + 1) + margin;
  view.setAttribute("viewBox", `${left} ${top} ${right - left} ${bottom - top}`);
  view.style.aspectRatio = `${right - left} / ${bottom - top}`;
  const [y, x] = field.position;
  let text = `Output (${y}, ${x}) of layer ${field.layer.index} '${field.layer.name}' (${field.layer.kind}, ` +
    `${field.output.join("×")})`;
  if (field.rows) {
    text += ` reads input rows ${field.rows[0]} … ${field.rows[1]} and columns ${field.columns[0]} … ` +
      `${field.columns[1]} of ${height}×${width}.`;
  } else if (field.status === "ok") {
    text += " reads no input position (a gap of a strided transposed convolution).";
  } else {
    text += `: receptive field ${field.status}.`;
  }
  const shown = (value) => value || "–";
  text += ` Receptive field ${shown(field.text.rf)}, jump ${shown(field.text.jump)}, ` +
    `start ${shown(field.text.start)}` +
    (field.status === "whole input" ? " (the whole input: after global pooling, flatten or linear)." : ".");
  $("rf-info").textContent = text;
  view.dataset.rows = field.rows ? field.rows.join(",") : "";
  view.dataset.columns = field.columns ? field.columns.join(",") : "";
}

// ---------------------------------------------------------------------------------- compare

const requestCompare = latestPost("/api/compare");

async function runCompare() {
  const answer = await requestCompare({ ...analysisBody(), description_b: editorB.value });
  if (!answer) return;
  if (answer.error) {
    const design = answer.error.body && answer.error.body.design;
    const box = $("error-b");
    if (design === "b" || !design) {
      showError(box, editorB, answer.error, design === "b" ? "design B, " : "");
    } else {
      showError(box, editorB, null);
      box.textContent = `Design A (the Analyse tab) has an error: ${answer.error.message}`;
      box.hidden = false;
    }
    $("compare-metrics").classList.add("stale");
    return;
  }
  showError($("error-b"), editorB, null);
  const c = answer.value;
  $("compare-metrics").classList.remove("stale");
  const body = $("compare-metrics").tBodies[0];
  body.replaceChildren(...c.metrics.map((m) => el("tr", { "data-metric": m.metric },
    el("td", { text: m.metric }), el("td", { class: "num", text: m.a }),
    el("td", { class: "num", text: m.b }), el("td", { class: "num ratio", text: m.ratio }))));
  $("compare-convention").textContent = `convention: ${c.convention}`;
  const head = el("tr");
  for (const side of ["A", "B"]) {
    for (const column of c.layer_columns) head.append(el("th", { text: `${side} ${column}` }));
  }
  $("compare-layers").tHead.replaceChildren(head);
  $("compare-layers").tBodies[0].replaceChildren(...c.layers.map((pair) => {
    const tr = el("tr");
    for (const cells of pair) cells.forEach((text) => tr.append(el("td", { text })));
    return tr;
  }));
}

const compareSoon = debounce(runCompare, DEBOUNCE_MS);

// ----------------------------------------------------------------------------------- export

async function exportAs(format, comparison) {
  const body = { ...analysisBody(), format };
  if (comparison) body.description_b = editorB.value;
  try {
    const response = await post("/api/export", body);
    const disposition = response.headers.get("Content-Disposition") || "";
    const match = /filename="([^"]+)"/.exec(disposition);
    download(await response.text(), match ? match[1] : `network.${format}`, response.headers.get("Content-Type"));
    setStatus(`exported ${format}`);
  } catch (error) {
    setStatus(`export failed: ${error.message}`);
  }
}

// ------------------------------------------------------------------------------------- runs

async function loadRuns() {
  const answer = await (await fetch("/api/runs")).json();
  const list = $("runs-list");
  list.replaceChildren();
  if (!answer.enabled) {
    $("runs-folder").textContent = "No runs folder: start the server with convlens serve --runs DIR.";
    return;
  }
  $("runs-folder").textContent = `Lab runs in ${answer.folder}` + (answer.runs.length ? "" : ": none yet.");
  for (const run of answer.runs) {
    const button = el("button", { type: "button", text: run.name, "data-run": run.path });
    button.addEventListener("click", () => showRun(run.path));
    list.append(el("li", {}, button));
  }
  if (answer.runs.length) showRun(answer.runs[0].path);
}

function encodePath(path) {
  return path.split("/").map(encodeURIComponent).join("/");
}

// The run asked for last wins: loadRuns shows the first run by itself, and a click on
// another one while that answer is still on its way must not be overwritten by it.
let shownRun = 0;

async function showRun(path) {
  const ticket = ++shownRun;
  const response = await fetch(`/api/runs/${encodePath(path)}`);
  const run = await response.json();
  if (ticket !== shownRun) return;
  if (!response.ok) {
    $("run-title").textContent = run.error;
    return;
  }
  $("run-title").textContent = run.path;
  $("run-problems").replaceChildren(...run.problems.map((p) => el("li", { text: p })));
  const charts = $("run-charts");
  charts.replaceChildren();
  const { columns, rows } = run.metrics;
  const xIndex = columns.indexOf("epoch");
  columns.forEach((name, i) => {
    if (i === xIndex) return;
    const points = rows.map((r, n) => [xIndex >= 0 ? r[xIndex] : n + 1, r[i]])
      .filter(([x, y]) => x !== null && y !== null);
    if (points.length) charts.append(chart(name, points, xIndex >= 0 ? "epoch" : "row"));
  });
  const images = $("run-images");
  images.replaceChildren(...run.images.map((image) => el("figure", {},
    el("img", { src: `/runs-files/${encodePath(path === "." ? image : `${path}/${image}`)}`, alt: image, loading: "lazy" }),
    el("figcaption", { text: image }))));
  $("run-config").tBodies[0].replaceChildren(...Object.entries(run.config || {}).map(([key, value]) =>
    el("tr", {}, el("th", { text: key }), el("td", { text: JSON.stringify(value) }))));
}

// A small line chart of one metric column, drawn as SVG.
function chart(name, points, xLabel) {
  const width = 320, height = 180, pad = { left: 56, right: 12, top: 22, bottom: 30 };
  const xs = points.map((p) => p[0]), ys = points.map((p) => p[1]);
  const [x0, x1] = [Math.min(...xs), Math.max(...xs)];
  let [y0, y1] = [Math.min(...ys), Math.max(...ys)];
  if (y0 === y1) { y0 -= 1; y1 += 1; }
  const sx = (x) => pad.left + (x1 === x0 ? 0.5 : (x - x0) / (x1 - x0)) * (width - pad.left - pad.right);
  const sy = (y) => height - pad.bottom - ((y - y0) / (y1 - y0)) * (height - pad.top - pad.bottom);
  const root = svg("svg", { viewBox: `0 0 ${width} ${height}`, class: "chart", "data-metric": name });
  const title = svg("text", { x: pad.left, y: 14, class: "chart-title" });
  title.textContent = name;
  root.append(title);
  root.append(svg("line", { x1: pad.left, y1: height - pad.bottom, x2: width - pad.right, y2: height - pad.bottom, class: "axis" }));
  root.append(svg("line", { x1: pad.left, y1: pad.top, x2: pad.left, y2: height - pad.bottom, class: "axis" }));
  for (const [value, y] of [[y1, sy(y1)], [y0, sy(y0)]]) {
    const label = svg("text", { x: pad.left - 4, y: y + 4, class: "tick", "text-anchor": "end" });
    label.textContent = Number(value.toPrecision(4)).toString();
    root.append(label);
  }
  for (const [value, x] of [[x0, sx(x0)], [x1, sx(x1)]]) {
    const label = svg("text", { x, y: height - pad.bottom + 14, class: "tick", "text-anchor": "middle" });
    label.textContent = String(value);
    root.append(label);
  }
  const axisName = svg("text", { x: width - pad.right, y: height - 4, class: "tick", "text-anchor": "end" });
  axisName.textContent = xLabel;
  root.append(axisName);
  root.append(svg("polyline", { points: points.map(([x, y]) => `${sx(x)},${sy(y)}`).join(" "), class: "line" }));
  return root;
}

// ------------------------------------------------------------------------------------- tabs

function showTab(name) {
  for (const button of document.querySelectorAll("[role=tab]")) {
    const active = button.dataset.tab === name;
    button.setAttribute("aria-selected", String(active));
    $(`tab-${button.dataset.tab}`).hidden = !active;
  }
  if (name === "compare") runCompare();
  if (name === "runs" && state.runs === null) {
    state.runs = true;
    loadRuns();
  }
}

// ---------------------------------------------------------------------------------- library

function fillLibrary(select) {
  const groups = {};
  for (const [i, item] of state.library.entries()) {
    if (!groups[item.group]) {
      groups[item.group] = el("optgroup", { label: item.group });
      select.append(groups[item.group]);
    }
    groups[item.group].append(el("option", { value: String(i), text: item.name, title: item.title }));
  }
}

async function loadLibrary() {
  const answer = await (await fetch("/api/library")).json();
  state.library = answer.descriptions;
  fillLibrary($("library"));
  fillLibrary($("library-b"));
  const pick = (name) => state.library.findIndex((d) => d.name === name);
  let a = pick("colour_cnn");
  if (a < 0) a = pick("zoo:colour_cnn");
  let b = pick("three_conv");
  if (b < 0) b = pick("zoo:vgg11");
  editorA.value = a >= 0 ? state.library[a].text : "input 3x32x32\nconv2d 16 k=k p=same\nrelu\n";
  editorB.value = b >= 0 ? state.library[b].text : "input 3x32x32\nconv2d 16 k=3 p=1\nrelu\n";
}

// -------------------------------------------------------------------------------- start-up

const editorA = new Editor($("editor-a"), analyseSoon);
const editorB = new Editor($("editor-b"), compareSoon);

function wire() {
  for (const id of ["convention", "batch", "dtype", "optimizer"]) {
    $(id).addEventListener("input", analyseSoon);
  }
  $("library").addEventListener("change", (e) => {
    const item = state.library[Number(e.target.value)];
    if (item) { editorA.value = item.text; analyse(); }
  });
  $("library-b").addEventListener("change", (e) => {
    const item = state.library[Number(e.target.value)];
    if (item) { editorB.value = item.text; runCompare(); }
  });
  $("upload").addEventListener("change", async (e) => {
    const file = e.target.files[0];
    if (!file) return;
    editorA.value = await file.text();
    e.target.value = "";
    analyse();
  });
  $("download").addEventListener("click", () => download(editorA.value, "network.cnn", "text/plain"));
  for (const button of document.querySelectorAll("button.export")) {
    button.addEventListener("click", () => exportAs(button.dataset.format, false));
  }
  for (const button of document.querySelectorAll("button.export-compare")) {
    button.addEventListener("click", () => exportAs(button.dataset.format, true));
  }
  for (const button of document.querySelectorAll("[role=tab]")) {
    button.addEventListener("click", () => showTab(button.dataset.tab));
  }
  $("rf-layer").addEventListener("change", (e) => {
    state.rfLayer = Number(e.target.value);
    refreshReceptiveField(true);
  });
  for (const id of ["rf-y", "rf-x"]) $(id).addEventListener("input", () => refreshReceptiveField());
}

async function start() {
  wire();
  try {
    await loadLibrary();
  } catch (error) {
    setStatus(`cannot load the examples: ${error.message}`);
  }
  await analyse();
  document.body.dataset.ready = "true";
}

start();
