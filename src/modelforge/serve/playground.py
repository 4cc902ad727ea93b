"""The playground page served at `/`: pick a model, send one record (or a prompt), see the answer.

One self-contained HTML page with inline CSS and JavaScript (no CDN, works offline). It
builds its form from `GET /v1/models`: one input per training column (a number, a text,
or pixels as JSON / an image file), or a prompt box whose tokens stream in for language models.
"""

PLAYGROUND_HTML = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>modelforge playground</title>
<style>
  body { font: 15px/1.45 system-ui, sans-serif; margin: 0; background: #f6f7f9; color: #1d2330; }
  header { background: #1d2330; color: #fff; padding: 12px 24px; font-weight: 600; }
  main { max-width: 860px; margin: 24px auto; padding: 0 16px; }
  section { background: #fff; border: 1px solid #dde1e8; border-radius: 8px; padding: 16px 20px; margin-bottom: 16px; }
  label { display: block; font-weight: 600; margin: 10px 0 4px; }
  .kind { font-weight: 400; color: #69708a; font-size: 13px; }
  input, select, textarea { font: inherit; width: 100%; box-sizing: border-box; padding: 6px 8px;
    border: 1px solid #c5cad6; border-radius: 6px; }
  textarea { font-family: ui-monospace, monospace; font-size: 13px; }
  button { font: inherit; font-weight: 600; margin-top: 14px; padding: 8px 20px; border: 0; border-radius: 6px;
    background: #2456d6; color: #fff; cursor: pointer; }
  button:disabled { background: #8aa0d8; cursor: wait; }
  #answer { min-height: 48px; }
  #answer .label { font-size: 28px; font-weight: 700; color: #10244f; }
  .bar { display: flex; align-items: center; gap: 8px; margin: 3px 0; font-size: 13px; }
  .bar span:first-child { width: 90px; text-align: right; overflow: hidden; text-overflow: ellipsis; }
  .bar div { height: 12px; background: #2456d6; border-radius: 3px; }
  #generated { white-space: pre-wrap; font-family: ui-monospace, monospace; font-size: 14px; }
  .error { color: #b3261e; white-space: pre-wrap; }
  .row { display: flex; gap: 12px; } .row > div { flex: 1; }
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
  <section id="form"></section>
  <section><label>Answer</label><div id="answer" aria-live="polite"></div></section>
</main>
<script>
"use strict";
let models = [];
const $ = (id) => document.getElementById(id);

function headers() {
  const h = { "Content-Type": "application/json" };
  const key = $("apikey").value.trim();
  if (key) h["Authorization"] = "Bearer " + key;
  return h;
}

function showError(text) {
  $("answer").innerHTML = "";
  const p = document.createElement("div");
  p.className = "error";
  p.id = "error";
  p.textContent = text;
  $("answer").appendChild(p);
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
  const select = $("model");
  select.innerHTML = "";
  for (const m of models) {
    const option = document.createElement("option");
    option.value = m.name;
    option.textContent = m.name + " (" + m.task + ")";
    select.appendChild(option);
  }
  buildForm();
}

function field(labelText, kind, input) {
  const wrap = document.createElement("div");
  const label = document.createElement("label");
  label.htmlFor = input.id;
  label.innerHTML = "";
  label.append(labelText + " ");
  const k = document.createElement("span");
  k.className = "kind";
  k.textContent = kind;
  label.appendChild(k);
  wrap.append(label, input);
  return wrap;
}

function buildForm() {
  const model = models.find((m) => m.name === $("model").value);
  const form = $("form");
  form.innerHTML = "";
  $("answer").innerHTML = "";
  if (!model) return;
  if (model.endpoint === "generate") {
    const prompt = document.createElement("textarea");
    prompt.id = "prompt"; prompt.rows = 4; prompt.value = "";
    const tokens = document.createElement("input");
    tokens.id = "max_new_tokens"; tokens.type = "number"; tokens.value = "100"; tokens.min = "1";
    const temperature = document.createElement("input");
    temperature.id = "temperature"; temperature.type = "number"; temperature.value = "0.8"; temperature.step = "0.1";
    form.append(field("prompt", "text", prompt), field("max new tokens", "integer", tokens),
                field("temperature", "> 0", temperature));
    const button = document.createElement("button");
    button.id = "send"; button.textContent = "Generate"; button.onclick = () => generate(model.name);
    form.appendChild(button);
    return;
  }
  if (model.endpoint === "images") {
    const n = document.createElement("input");
    n.id = "n"; n.type = "number"; n.value = "16"; n.min = "1";
    const label = document.createElement("select");
    label.id = "label";
    for (const name of ["", ...model.classes]) {
      const option = document.createElement("option");
      option.value = name; option.textContent = name === "" ? "every class in turn" : name;
      label.appendChild(option);
    }
    const seed = document.createElement("input");
    seed.id = "seed"; seed.type = "number"; seed.value = "0"; seed.min = "0";
    form.append(field("images", "count", n), field("label", "class", label), field("seed", "integer", seed));
    const button = document.createElement("button");
    button.id = "send"; button.textContent = "Sample"; button.onclick = () => sample(model.name);
    form.appendChild(button);
    return;
  }
  for (const f of model.features) {
    let input;
    if (f.kind === "image") {
      input = document.createElement("textarea");
      input.rows = 5;
      input.placeholder = "pixels as JSON, e.g. [[0, 3, 16], [2, 9, 0]], or choose an image file below";
      const file = document.createElement("input");
      file.type = "file"; file.accept = "image/*"; file.id = "file-" + f.name;
      file.onchange = () => {
        const reader = new FileReader();
        reader.onload = () => { input.value = JSON.stringify(reader.result); };
        if (file.files[0]) reader.readAsDataURL(file.files[0]);
      };
      input.id = "feature-" + f.name;
      form.append(field(f.name, "image", input), file);
      continue;
    }
    input = document.createElement("input");
    input.type = f.kind === "numeric" ? "number" : "text";
    input.step = "any";
    input.id = "feature-" + f.name;
    form.appendChild(field(f.name, f.kind, input));
  }
  const button = document.createElement("button");
  button.id = "send"; button.textContent = "Predict"; button.onclick = () => predict(model);
  form.appendChild(button);
}

function readRecord(model) {
  const record = {};
  for (const f of model.features) {
    const raw = $("feature-" + f.name).value.trim();
    if (f.kind === "image") {
      try { record[f.name] = JSON.parse(raw); } catch (e) { throw new Error(f.name + ": pixels are not valid JSON"); }
    } else if (f.kind === "numeric") {
      record[f.name] = raw === "" ? null : Number(raw);
    } else if (raw !== "" || !f.kind.includes("optional")) {
      record[f.name] = raw === "" ? null : raw;
    }
  }
  return record;
}

async function predict(model) {
  let record;
  try { record = readRecord(model); } catch (e) { showError(e.message); return; }
  $("send").disabled = true;
  try {
    const response = await fetch("/v1/models/" + encodeURIComponent(model.name) + "/predict", {
      method: "POST", headers: headers(), body: JSON.stringify({ records: [record] }),
    });
    const body = await response.json().catch(() => null);
    if (!response.ok) { showError(errorText(response.status, body)); return; }
    showPrediction(body.predictions[0]);
  } catch (e) {
    showError("network error: " + e.message);
  } finally {
    $("send").disabled = false;
  }
}

function showPrediction(p) {
  const answer = $("answer");
  answer.innerHTML = "";
  const label = document.createElement("div");
  label.className = "label";
  label.id = "prediction";
  if (p.items) {
    label.textContent = p.cold_start ? "unknown user: the most popular items" : "top " + p.items.length + " items";
    answer.appendChild(label);
    for (const it of p.items) {
      const row = document.createElement("div");
      row.className = "item";
      row.textContent = it.item + (it.score === null ? "" : "  (" + it.score.toFixed(3) + ")");
      answer.appendChild(row);
    }
    return;
  }
  label.textContent = "value" in p ? String(p.value) + (p.cold_start ? " (fallback)" : "") : String(p.label);
  answer.appendChild(label);
  if (!p.probabilities) return;
  const top = Object.entries(p.probabilities).sort((a, b) => b[1] - a[1]).slice(0, 5);
  for (const [name, prob] of top) {
    const row = document.createElement("div");
    row.className = "bar";
    const n = document.createElement("span"); n.textContent = name;
    const bar = document.createElement("div"); bar.style.width = Math.max(2, Math.round(prob * 300)) + "px";
    const v = document.createElement("span"); v.textContent = prob.toFixed(3);
    row.append(n, bar, v);
    answer.appendChild(row);
  }
}

async function sample(name) {
  const payload = { n: Number($("n").value), seed: Number($("seed").value), grid: true };
  if ($("label").value !== "") payload.label = $("label").value;
  $("answer").innerHTML = "";
  $("send").disabled = true;
  try {
    const response = await fetch("/v1/models/" + encodeURIComponent(name) + "/images", {
      method: "POST", headers: headers(), body: JSON.stringify(payload),
    });
    const body = await response.json().catch(() => null);
    if (!response.ok) { showError(errorText(response.status, body)); return; }
    const grid = document.createElement("img");
    grid.id = "grid"; grid.alt = body.images.length + " sampled images";
    grid.src = "data:image/png;base64," + body.grid;
    $("answer").appendChild(grid);
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
  const answer = $("answer");
  answer.innerHTML = "";
  const out = document.createElement("div");
  out.id = "generated";
  out.textContent = payload.prompt;
  answer.appendChild(out);
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
