"""The playground page served at `/`: pick a model, send one record (or a prompt), see the answer.

One self-contained HTML page with inline CSS and JavaScript: no CDN, no external resource, so it
works offline and under the server's Content-Security-Policy (`'self'` plus inline code, `data:`
and `blob:` images). It builds its form from `GET /v1/models`:

- a table model gets a compact grid of fields, prefilled with the typical row its fitted
  preprocessing kept (medians, most frequent categories), and a box where a pasted CSV row (in
  column order, or under its header line) fills them;
- an image model gets a drop zone: the image is decoded in the browser (canvas) to the model's
  size, channels and pixel range, shown as the model will see it, and sent as pixels;
- a language model gets a prompt box whose tokens stream in; an image generator a sampler;
  a recommender a user box.

Classification answers come with their probabilities as a bar chart (plain elements, no library).
"""

PLAYGROUND_HTML = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>modelforge playground</title>
<style>
  * { box-sizing: border-box; }
  body { font: 15px/1.45 system-ui, sans-serif; margin: 0; background: #f6f7f9; color: #1d2330; }
  header { background: #1d2330; color: #fff; padding: 12px 24px; font-weight: 600; }
  main { max-width: 1120px; margin: 20px auto; padding: 0 16px; }
  section { background: #fff; border: 1px solid #dde1e8; border-radius: 8px; padding: 14px 18px; margin-bottom: 16px; }
  label { display: block; font-weight: 600; margin: 8px 0 4px; }
  .kind, .hint { font-weight: 400; color: #69708a; font-size: 13px; }
  .hint { margin: 0 0 8px; }
  input, select, textarea { font: inherit; width: 100%; padding: 6px 8px; border: 1px solid #c5cad6; border-radius: 6px;
    background: #fff; color: inherit; }
  input[type=checkbox] { width: auto; margin: 0 6px 0 0; vertical-align: middle; }
  input[type=file] { border: 0; padding: 4px 0; }
  textarea { font-family: ui-monospace, monospace; font-size: 13px; }
  .invalid { border-color: #b3261e; background: #fdf0ef; }
  button { font: inherit; font-weight: 600; margin-top: 12px; padding: 8px 20px; border: 0; border-radius: 6px;
    background: #2456d6; color: #fff; cursor: pointer; }
  button.quiet { background: #e8ecf5; color: #1d2330; margin-left: 8px; }
  button:disabled { background: #8aa0d8; cursor: wait; }
  .row { display: flex; gap: 12px; } .row > div { flex: 1; }
  .layout { display: grid; grid-template-columns: minmax(0, 1fr) 340px; gap: 16px; align-items: start; }
  .layout > section { margin-bottom: 0; }
  #answer-panel { position: sticky; top: 12px; }
  @media (max-width: 860px) { .layout { grid-template-columns: minmax(0, 1fr); } #answer-panel { position: static; } }
  .fields { display: grid; grid-template-columns: repeat(auto-fill, minmax(150px, 1fr)); gap: 6px 12px; }
  .fields label { font-size: 12px; font-weight: 600; margin: 0 0 2px; white-space: nowrap; overflow: hidden;
    text-overflow: ellipsis; color: #3a4256; }
  .fields input { padding: 4px 7px; font-size: 14px; }
  .fields .wide { grid-column: 1 / -1; }
  .paste { display: flex; gap: 8px; align-items: flex-start; margin-bottom: 10px; }
  .paste textarea { flex: 1; height: 36px; resize: vertical; }
  .paste button { margin-top: 0; }
  #paste-status { font-size: 13px; margin: -4px 0 10px; min-height: 1em; }
  #paste-status.problem { color: #b3261e; }
  .drop { display: flex; gap: 16px; align-items: center; border: 2px dashed #c5cad6; border-radius: 8px; padding: 12px;
    background: #fafbfd; }
  .drop.over { border-color: #2456d6; background: #eef3ff; }
  .drop canvas { width: 112px; height: 112px; image-rendering: pixelated; border: 1px solid #dde1e8;
    background: #eef0f4; flex: none; object-fit: contain; }
  .drop p { margin: 0 0 6px; }
  details.raw { margin-top: 8px; } details.raw summary { cursor: pointer; color: #69708a; font-size: 13px; }
  #answer { min-height: 48px; }
  #answer[data-pending] { opacity: 0.55; }
  #answer .placeholder { color: #69708a; }
  #answer .label { font-size: 28px; font-weight: 700; color: #10244f; word-break: break-word; }
  #answer .meta { color: #69708a; font-size: 12px; margin-top: 10px; }
  .bars { margin-top: 8px; }
  .bar { display: grid; grid-template-columns: minmax(0, 90px) minmax(0, 1fr) 52px; align-items: center; gap: 8px;
    margin: 4px 0; font-size: 13px; }
  .bar .name { text-align: right; overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
  .bar .track { height: 14px; background: #edf0f6; border-radius: 3px; overflow: hidden; }
  .bar .fill { height: 100%; background: #8ea6e6; border-radius: 3px; }
  .bar.top .fill { background: #2456d6; } .bar.top .name { font-weight: 700; }
  .bar .value { font-variant-numeric: tabular-nums; text-align: right; }
  .more { color: #69708a; font-size: 12px; }
  #generated { white-space: pre-wrap; font-family: ui-monospace, monospace; font-size: 14px; }
  #grid { max-width: 100%; image-rendering: pixelated; }
  .error { color: #b3261e; white-space: pre-wrap; }
</style>
</head>
<body>
<header>modelforge playground</header>
<main>
  <section>
    <div class="row">
      <div><label for="model">Model</label><select id="model"></select></div>
      <div><label for="apikey">API key <span class="kind">(if the server has one)</span></label>
        <input id="apikey" type="password" autocomplete="off"></div>
    </div>
  </section>
  <div class="layout">
    <section id="form"></section>
    <section id="answer-panel"><label>Answer</label><div id="answer" aria-live="polite"></div></section>
  </div>
</main>
<script>
"use strict";
const MAX_BARS = 12;  // more classes than this: the likeliest MAX_BARS - 2, then a line for the rest
let models = [];
const $ = (id) => document.getElementById(id);

function element(tag, props, children) {
  const node = Object.assign(document.createElement(tag), props || {});
  if (children) node.append(...children);
  return node;
}

function headers() {
  const h = { "Content-Type": "application/json" };
  const key = $("apikey").value.trim();
  if (key) h["Authorization"] = "Bearer " + key;
  return h;
}

function showError(text) {
  $("answer").replaceChildren(element("div", { className: "error", id: "error", textContent: text }));
}

function showPlaceholder(text) {
  $("answer").replaceChildren(element("div", { className: "placeholder", textContent: text }));
}

function errorText(status, body) {
  if (body && Array.isArray(body.detail)) {
    return status + ": " + body.detail.map((d) => (d.loc || []).join(".") + ": " + d.msg).join("\\n");
  }
  return status + ": " + (body && body.detail ? body.detail : "request failed");
}

async function loadModels() {
  const response = await fetch("/v1/models", { headers: headers() });
  if (!response.ok) { showError(errorText(response.status, await response.json().catch(() => null))); return; }
  models = (await response.json()).models;
  const options = models.map((m) => element("option", { value: m.name, textContent: m.name + " (" + m.task + ")" }));
  $("model").replaceChildren(...options);
  buildForm();
}

function field(labelText, kind, input) {
  const note = element("span", { className: "kind", textContent: kind });
  return element("div", {}, [element("label", { htmlFor: input.id }, [labelText + " ", note]), input]);
}

function button(id, text, onclick, quiet) {
  const className = quiet ? "quiet" : "";
  return element("button", { id: id, type: "button", textContent: text, onclick: onclick, className: className });
}

function buildForm() {
  const model = models.find((m) => m.name === $("model").value);
  const form = $("form");
  form.replaceChildren();
  showPlaceholder("");
  if (!model) return;
  if (model.endpoint === "generate") buildGenerateForm(form, model);
  else if (model.endpoint === "images") buildSampleForm(form, model);
  else buildPredictForm(form, model);
}

function buildGenerateForm(form, model) {
  const prompt = element("textarea", { id: "prompt", rows: 4 });
  const tokens = element("input", { id: "max_new_tokens", type: "number", value: "100", min: "1" });
  const temperature = element("input", { id: "temperature", type: "number", value: "0.8", step: "0.1" });
  form.append(field("prompt", "text", prompt), field("max new tokens", "integer", tokens),
              field("temperature", "> 0", temperature), button("send", "Generate", () => generate(model.name)));
  showPlaceholder("Write a prompt and press Generate: the tokens stream in here.");
}

function buildSampleForm(form, model) {
  const n = element("input", { id: "n", type: "number", value: "16", min: "1" });
  const label = element("select", { id: "label" }, ["", ...model.classes].map((name) =>
    element("option", { value: name, textContent: name === "" ? "every class in turn" : name })));
  const seed = element("input", { id: "seed", type: "number", value: "0", min: "0" });
  form.append(field("images", "count", n), field("label", "class", label), field("seed", "integer", seed),
              button("send", "Sample", () => sample(model.name)));
  showPlaceholder("Press Sample to draw images from the model.");
}

// ----------------------------------------------------------------------------- records
// the columns a pasted CSV row fills, in the model's column order
const csvColumns = (model) => model.features.filter((f) => ["numeric", "category", "text"].includes(f.kind));

function buildPredictForm(form, model) {
  const typical = model.features.some((f) => f.example !== undefined);
  if (typical) {
    const text = "Prefilled with a typical row of the training data (medians, most frequent values): " +
      "change any field, or paste a row.";
    form.append(element("p", { className: "hint", textContent: text }));
  }
  if (csvColumns(model).length > 1) {
    const paste = element("textarea", { id: "paste", rows: 1, spellcheck: false,
      placeholder: "paste a CSV row: values in column order, or a header line and a row" });
    paste.addEventListener("paste", () => setTimeout(() => fillFromCsv(model, paste.value), 0));
    const fill = button("fill", "Fill", () => fillFromCsv(model, paste.value), true);
    form.append(element("div", { className: "paste" }, [paste, fill]), element("div", { id: "paste-status" }));
  }
  const grid = element("div", { className: "fields" });
  for (const f of model.features) {
    if (f.kind === "image") { form.append(imageField(model, f)); continue; }
    let input;
    if (f.kind === "text") {
      input = element("textarea", { rows: 3 });
    } else {
      input = element("input", { type: "text", autocomplete: "off", spellcheck: false });
      if (f.kind === "numeric") { input.inputMode = "decimal"; input.placeholder = "number"; }
      else input.placeholder = f.kind;
      input.addEventListener("keydown", (e) => { if (e.key === "Enter") predict(model); });
    }
    input.id = "feature-" + f.name;
    input.addEventListener("input", () => input.classList.remove("invalid"));
    const label = element("label", { htmlFor: input.id, textContent: f.name, title: f.name + " (" + f.kind + ")" });
    grid.append(element("div", { className: f.kind === "text" ? "wide" : "" }, [label, input]));
  }
  if (grid.children.length) form.append(grid);
  fillExample(model);
  const buttons = [button("send", "Predict", () => predict(model))];
  if (typical) buttons.push(button("reset", "Typical row", () => fillExample(model), true));
  form.append(element("div", {}, buttons));
  const image = model.features.find((f) => f.kind === "image");
  showPlaceholder(image ? "Drop an image on the form (or choose one): the answer appears here."
                        : "Press Predict (or Enter in a field) to see the answer.");
}

function fillExample(model) {
  for (const f of model.features) {
    const input = $("feature-" + f.name);
    if (f.kind === "image" || !input) continue;
    input.value = f.example === undefined || f.example === null ? "" : String(f.example);
    input.classList.remove("invalid");
  }
}

function readRecord(model) {
  const record = {};
  for (const f of model.features) {
    const input = $("feature-" + f.name);
    const raw = input.value.trim();
    if (f.kind === "image") {
      if (raw === "") throw new Error(f.name + ": drop an image on the form or choose a file first");
      try { record[f.name] = JSON.parse(raw); } catch (e) { throw new Error(f.name + ": pixels are not valid JSON"); }
    } else if (f.kind === "numeric") {
      const value = Number(raw);
      if (raw !== "" && !Number.isFinite(value)) {
        input.classList.add("invalid");
        throw new Error(f.name + ": expected a number (or nothing: the training median), got " + JSON.stringify(raw));
      }
      record[f.name] = raw === "" ? null : value;
    } else if (raw !== "" || !f.kind.includes("optional")) {
      record[f.name] = raw === "" ? null : raw;
    }
  }
  return record;
}

function markInvalid(body) {
  if (!body || !Array.isArray(body.detail)) return;
  for (const d of body.detail) {
    const input = d.loc && d.loc.length > 3 ? $("feature-" + d.loc[3]) : null;
    if (input) input.classList.add("invalid");
  }
}

// ----------------------------------------------------------------------------- CSV rows
function csvCells(line, delimiter) {
  const cells = [];
  let cell = "", quoted = false, wasQuoted = false;
  for (let i = 0; i < line.length; i++) {
    const ch = line[i];
    if (quoted) {
      if (ch !== '"') cell += ch;
      else if (line[i + 1] === '"') { cell += '"'; i++; }
      else quoted = false;
    } else if (ch === '"' && cell.trim() === "") {
      quoted = wasQuoted = true; cell = "";
    } else if (ch === delimiter) {
      cells.push(wasQuoted ? cell : cell.trim()); cell = ""; wasQuoted = false;
    } else {
      cell += ch;
    }
  }
  cells.push(wasQuoted ? cell : cell.trim());
  return cells;
}

function pasteStatus(text, problem) {
  const status = $("paste-status");
  status.textContent = text;
  status.className = problem ? "problem" : "";
}

function fillFromCsv(model, text) {
  const lines = text.split(/\\r?\\n/).filter((line) => line.trim() !== "");
  if (!lines.length) { pasteStatus("nothing to fill: paste a CSV row", true); return; }
  const delimiter = ["\\t", ",", ";"].find((d) => lines[0].includes(d)) || ",";
  const names = csvColumns(model).map((f) => f.name);
  const first = csvCells(lines[0], delimiter);
  const header = first.filter((cell) => names.includes(cell)).length >= Math.min(2, names.length);
  let values = {};
  const notes = [];
  if (header) {
    if (lines.length < 2) { pasteStatus("that is the header line; paste a data row under it", true); return; }
    const row = csvCells(lines[1], delimiter);
    first.forEach((name, i) => { if (names.includes(name) && i < row.length) values[name] = row[i]; });
    const ignored = first.filter((name) => name !== "" && !names.includes(name));
    if (ignored.length) notes.push("ignored " + ignored.join(", "));
    if (lines.length > 2) notes.push("used the first of " + (lines.length - 1) + " rows");
  } else if (first.length === names.length) {
    names.forEach((name, i) => { values[name] = first[i]; });
    if (lines.length > 1) notes.push("used the first of " + lines.length + " rows");
  } else {
    const order = names.length > 6 ? [...names.slice(0, 3), "…", names[names.length - 1]] : names;
    pasteStatus("expected " + names.length + " values in column order (" + order.join(", ") + "), got " + first.length +
                "; paste the header line with the row to match columns by name", true);
    return;
  }
  const filled = Object.keys(values);
  for (const name of filled) {
    const input = $("feature-" + name);
    input.value = values[name];
    input.classList.remove("invalid");
  }
  const kept = names.filter((name) => !filled.includes(name));
  if (kept.length) {
    notes.push("kept " + kept.length + " (" + kept.slice(0, 5).join(", ") + (kept.length > 5 ? ", …" : "") + ")");
  }
  const plural = filled.length === 1 ? "" : "s";
  pasteStatus(["filled " + filled.length + " field" + plural, ...notes].join("; "), false);
}

// ----------------------------------------------------------------------------- images
function imageField(model, f) {
  const [channels, height, width] = f.shape || [1, 28, 28];
  const [low, high] = f.pixel_range || [0, 1];
  const preview = element("canvas", { id: "preview-" + f.name, width: width, height: height,
    title: "what the model sees: " + width + "×" + height + (channels === 1 ? ", grayscale" : ", colour") });
  const file = element("input", { type: "file", accept: "image/*", id: "file-" + f.name });
  const invert = element("input", { type: "checkbox", id: "invert-" + f.name });
  const looks = width + "×" + height + (channels === 1 ? " grayscale" : " colour");
  const info = element("div", { id: "image-info-" + f.name, className: "kind",
    textContent: "It is resized to " + looks + " pixels in " + low + "…" + high + "." });
  const zone = element("div", { className: "drop", id: "drop-" + f.name }, [preview, element("div", {}, [
    element("p", {}, [element("strong", { textContent: "Drop an image here" }), " (or paste one, or choose a file)"]),
    file, info,
    element("label", { htmlFor: invert.id, className: "kind" }, [invert, "invert the brightness"]),
  ])]);
  const pixels = element("textarea", { id: "feature-" + f.name, rows: 5, spellcheck: false,
    placeholder: "pixels as JSON, e.g. [[0, 3, 16], [2, 9, 0]] (height × width, or height × width × 3)" });
  const raw = element("details", { className: "raw" }, [element("summary", { textContent: "pixels as JSON" }), pixels]);
  const title = element("label", {}, [f.name + " ", element("span", { className: "kind", textContent: "image" })]);
  const wrap = element("div", {}, [title, zone, raw]);
  let decoded = null;  // {values: brightness in 0..1 per channel, mean} of the last image, before inverting
  const show = () => {
    if (!decoded) return;
    const values = invert.checked ? decoded.values.map((v) => 1 - v) : decoded.values;
    pixels.value = JSON.stringify(pixelRows(values, channels, height, width, low, high));
    drawPreview(preview, values, channels);
  };
  const load = (blob, chosen) => {
    if (!blob || !blob.type.startsWith("image/")) { showError(f.name + ": that is not an image file"); return; }
    if (!chosen) file.value = "";  // dropped or pasted: the file input no longer names the image shown
    decodeImage(blob, channels, height, width).then((result) => {
      decoded = result;
      invert.checked = shouldInvert(result.mean, f, channels);
      const inverted = invert.checked ? ", inverted to match the training images" : "";
      info.textContent = (blob.name || "pasted image") + ": resized to " + looks + inverted + ".";
      show();
      predict(model);
    }, () => showError(f.name + ": cannot decode " + (blob.name || "the image")));
  };
  file.onchange = () => load(file.files[0], true);
  invert.onchange = () => { show(); if (decoded) predict(model); };
  zone.addEventListener("dragover", (e) => { e.preventDefault(); zone.classList.add("over"); });
  zone.addEventListener("dragleave", () => zone.classList.remove("over"));
  zone.addEventListener("drop", (e) => {
    e.preventDefault();
    zone.classList.remove("over");
    load(e.dataTransfer.files[0]);
  });
  document.onpaste = (e) => {
    const item = [...(e.clipboardData ? e.clipboardData.items : [])].find((it) => it.type.startsWith("image/"));
    if (item && document.body.contains(zone)) { e.preventDefault(); load(item.getAsFile()); }
  };
  return wrap;
}

function decodeImage(blob, channels, height, width) {
  return new Promise((resolve, reject) => {
    const url = URL.createObjectURL(blob);
    const image = new Image();
    image.onload = () => {
      URL.revokeObjectURL(url);
      const canvas = element("canvas", { width: width, height: height });
      const context = canvas.getContext("2d", { willReadFrequently: true });
      context.fillStyle = "#fff";  // transparent parts read as white paper, not black
      context.fillRect(0, 0, width, height);
      context.imageSmoothingQuality = "high";
      context.drawImage(image, 0, 0, width, height);
      const rgba = context.getImageData(0, 0, width, height).data;
      const values = [];
      let sum = 0;
      for (let i = 0; i < width * height; i++) {
        const [r, g, b] = [rgba[4 * i], rgba[4 * i + 1], rgba[4 * i + 2]];
        // grayscale as PIL's convert("L") computes it, the way the server reads image files
        const pixel = channels === 1 ? [(r * 299 + g * 587 + b * 114) / 1000 / 255] : [r / 255, g / 255, b / 255];
        values.push(...pixel);
        sum += pixel.reduce((a, v) => a + v, 0) / pixel.length;
      }
      resolve({ values: values, mean: sum / (width * height) });
    };
    image.onerror = () => { URL.revokeObjectURL(url); reject(new Error("decode")); };
    image.src = url;
  });
}

// A grayscale model trained on light ink on a dark background (digits) gets a photo of dark ink on
// white paper inverted; colour images are never inverted.
function shouldInvert(imageMean, f, channels) {
  if (channels !== 1 || f.pixel_mean === undefined) return false;
  const [low, high] = f.pixel_range || [0, 1];
  const trainingMean = (f.pixel_mean - low) / ((high - low) || 1);
  return Math.abs(imageMean - trainingMean) > 0.3 && (imageMean > 0.5) !== (trainingMean > 0.5);
}

function pixelRows(values, channels, height, width, low, high) {
  const scale = (v) => Math.round((low + v * (high - low)) * 10000) / 10000;
  const rows = [];
  for (let y = 0; y < height; y++) {
    const row = [];
    for (let x = 0; x < width; x++) {
      const at = (y * width + x) * channels;
      row.push(channels === 1 ? scale(values[at]) : [0, 1, 2].map((c) => scale(values[at + c])));
    }
    rows.push(row);
  }
  return rows;
}

function drawPreview(canvas, values, channels) {
  const context = canvas.getContext("2d");
  const picture = context.createImageData(canvas.width, canvas.height);
  for (let i = 0; i < canvas.width * canvas.height; i++) {
    for (let c = 0; c < 3; c++) {
      picture.data[4 * i + c] = Math.round(255 * values[i * channels + (channels > 1 ? c : 0)]);
    }
    picture.data[4 * i + 3] = 255;
  }
  context.putImageData(picture, 0, 0);
}

// ----------------------------------------------------------------------------- answers
async function predict(model) {
  let record;
  try { record = readRecord(model); } catch (e) { showError(e.message); return; }
  $("send").disabled = true;
  $("answer").dataset.pending = "true";
  const started = performance.now();
  try {
    const response = await fetch("/v1/models/" + encodeURIComponent(model.name) + "/predict", {
      method: "POST", headers: headers(), body: JSON.stringify({ records: [record] }),
    });
    const body = await response.json().catch(() => null);
    if (!response.ok) { showError(errorText(response.status, body)); markInvalid(body); return; }
    showPrediction(body.predictions[0], performance.now() - started);
  } catch (e) {
    showError("network error: " + e.message);
  } finally {
    $("send").disabled = false;
    delete $("answer").dataset.pending;
  }
}

function percent(p) {
  return p >= 0.9995 ? "100%" : p < 0.0005 ? (p > 0 ? "<0.1%" : "0%") : (100 * p).toFixed(1) + "%";
}

function showPrediction(p, elapsedMs) {
  const answer = $("answer");
  answer.replaceChildren();
  const label = element("div", { className: "label", id: "prediction" });
  answer.appendChild(label);
  if (p.items) {
    label.textContent = p.cold_start ? "unknown user: the most popular items" : "top " + p.items.length + " items";
    for (const it of p.items) {
      answer.appendChild(element("div", { className: "item",
        textContent: it.item + (it.score === null ? "" : "  (" + it.score.toFixed(3) + ")") }));
    }
  } else if ("value" in p) {
    label.textContent = p.value === null ? "unknown" : String(Number(p.value.toPrecision(6)));
    label.title = String(p.value);
    if (p.cold_start) answer.appendChild(element("div", { className: "kind", textContent: "(fallback value)" }));
  } else {
    label.textContent = String(p.label);
    answer.appendChild(probabilityBars(p.probabilities || {}));
  }
  const took = "answered in " + Math.round(elapsedMs) + " ms";
  answer.appendChild(element("div", { className: "meta", textContent: took }));
}

function probabilityBars(probabilities) {
  const ranked = Object.entries(probabilities).sort((a, b) => b[1] - a[1]);
  const shown = ranked.length > MAX_BARS ? ranked.slice(0, MAX_BARS - 2) : ranked;
  const bars = element("div", { className: "bars", role: "list" });
  shown.forEach(([name, prob], i) => {
    const fill = element("div", { className: "fill" });
    fill.style.width = (100 * prob).toFixed(2) + "%";
    const props = { className: "bar" + (i === 0 ? " top" : ""), role: "listitem", title: name + ": " + prob };
    const row = element("div", props, [
      element("span", { className: "name", textContent: name }),
      element("div", { className: "track" }, [fill]),
      element("span", { className: "value", textContent: percent(prob) }),
    ]);
    row.dataset.probability = String(prob);
    bars.appendChild(row);
  });
  if (ranked.length > shown.length) {
    const rest = ranked.slice(shown.length).reduce((a, [, prob]) => a + prob, 0);
    bars.appendChild(element("div", { className: "more",
      textContent: "and " + (ranked.length - shown.length) + " more classes, " + percent(rest) + " together" }));
  }
  return bars;
}

async function sample(name) {
  const payload = { n: Number($("n").value), seed: Number($("seed").value), grid: true };
  if ($("label").value !== "") payload.label = $("label").value;
  $("answer").replaceChildren();
  $("send").disabled = true;
  try {
    const response = await fetch("/v1/models/" + encodeURIComponent(name) + "/images", {
      method: "POST", headers: headers(), body: JSON.stringify(payload),
    });
    const body = await response.json().catch(() => null);
    if (!response.ok) { showError(errorText(response.status, body)); return; }
    $("answer").appendChild(element("img", { id: "grid", alt: body.images.length + " sampled images",
                                             src: "data:image/png;base64," + body.grid }));
  } catch (e) {
    showError("network error: " + e.message);
  } finally {
    $("send").disabled = false;
  }
}

async function generate(name) {
  const payload = {
    prompt: $("prompt").value, stream: true,
    max_new_tokens: Number($("max_new_tokens").value), temperature: Number($("temperature").value),
  };
  const out = element("div", { id: "generated", textContent: payload.prompt });
  $("answer").replaceChildren(out);
  $("send").disabled = true;
  try {
    const response = await fetch("/v1/models/" + encodeURIComponent(name) + "/generate", {
      method: "POST", headers: headers(), body: JSON.stringify(payload),
    });
    if (!response.ok) { showError(errorText(response.status, await response.json().catch(() => null))); return; }
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += decoder.decode(value, { stream: true });
      let cut;
      while ((cut = buffer.indexOf("\\n\\n")) >= 0) {
        const event = buffer.slice(0, cut);
        buffer = buffer.slice(cut + 2);
        const kind = (event.match(/^event: (.*)$/m) || [null, "token"])[1];
        const data = JSON.parse((event.match(/^data: (.*)$/m) || [null, "{}"])[1]);
        if (kind === "token") out.textContent += data.token;
        else if (kind === "error") showError(data.detail);
        else if (kind === "done") out.dataset.done = "true";
      }
    }
  } catch (e) {
    showError("network error: " + e.message);
  } finally {
    $("send").disabled = false;
  }
}

$("model").onchange = buildForm;
$("apikey").onchange = loadModels;
loadModels();
</script>
</body>
</html>
"""
