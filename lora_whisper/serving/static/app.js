// Plain browser JS, no build step: talks to the same server's OpenAI-compatible API.
"use strict";
const $ = (id) => document.getElementById(id);

// Long audio comes back in timed segments (Whisper's timestamp seeking): list them.
function clock(seconds) {
  const m = Math.floor(seconds / 60), s = Math.floor(seconds % 60);
  return m + ":" + String(s).padStart(2, "0");
}

function showSegments(segments) {
  if (segments.length < 2) return;
  for (const seg of segments) {
    const li = document.createElement("li");
    li.textContent = "[" + clock(seg.start) + "–" + clock(seg.end) + "] " + seg.text;
    $("segments").append(li);
  }
}
let modelId = "whisper-1";
let recorder = null;

function setStatus(text, isError) {
  $("status").textContent = text;
  $("status").className = isError ? "error" : "";
}

function headers() {
  const key = $("api-key").value.trim();
  if (key) localStorage.setItem("lora-whisper-key", key);
  return key ? { Authorization: "Bearer " + key } : {};
}

function addOptions(group, codes) {
  const sel = $("language");
  const og = document.createElement("optgroup");
  og.label = group;
  for (const code of codes) {
    const o = document.createElement("option");
    o.value = code;
    o.textContent = code;
    og.appendChild(o);
  }
  if (codes.length) sel.appendChild(og);
}

async function init() {
  $("api-key").value = localStorage.getItem("lora-whisper-key") || "";
  const health = await (await fetch("/health")).json();
  if (health.auth) $("key-row").classList.remove("hidden");
  modelId = health.model;
  $("model").textContent = health.model;
  let experts = health.languages, others = [];
  const r = await fetch("/v1/models", { headers: headers() });
  if (r.ok) {
    const card = (await r.json()).data[0];
    experts = card.languages;
    others = card.backbone_languages.filter((c) => !experts.includes(c));
  }
  addOptions("with an expert", experts);
  addOptions("backbone only", others);
  document.body.dataset.ready = "1";
}

async function transcribe(blob, filename) {
  const form = new FormData();
  form.append("file", blob, filename);
  form.append("model", modelId);
  form.append("language", $("language").value);
  form.append("response_format", "verbose_json");
  setStatus("Transcribing " + filename + " …");
  $("transcript").textContent = "";
  $("segments").textContent = "";
  try {
    const r = await fetch("/v1/audio/transcriptions", { method: "POST", body: form, headers: headers() });
    const body = await r.json();
    if (!r.ok) {
      const msg = body.error ? body.error.message : JSON.stringify(body.detail || body);
      setStatus("Error " + r.status + ": " + msg, true);
      return;
    }
    $("transcript").textContent = body.text || "(no speech recognised)";
    const prob = body.language_probability == null ? "" : " (p=" + body.language_probability.toFixed(2) + ")";
    $("detected").textContent = body.language_code + prob;
    $("expert").textContent = body.expert || "none (bare backbone)";
    $("duration").textContent = body.duration.toFixed(1) + " s";
    showSegments(body.segments || []);
    setStatus("Done.");
  } catch (e) {
    setStatus("Request failed: " + e, true);
  }
}

$("send").addEventListener("click", () => {
  const f = $("file").files[0];
  if (!f) return setStatus("Choose an audio file first.", true);
  transcribe(f, f.name);
});

$("record").addEventListener("click", async () => {
  if (recorder && recorder.state === "recording") {
    recorder.stop();
    return;
  }
  let stream;
  try {
    stream = await navigator.mediaDevices.getUserMedia({ audio: true });
  } catch (e) {
    return setStatus("Microphone unavailable: " + e.message, true);
  }
  const chunks = [];
  recorder = new MediaRecorder(stream);
  recorder.ondataavailable = (ev) => { if (ev.data.size) chunks.push(ev.data); };
  recorder.onstop = () => {
    stream.getTracks().forEach((t) => t.stop());
    $("record").classList.remove("on");
    $("record").textContent = "Record";
    const type = recorder.mimeType || "audio/webm";
    const ext = type.includes("ogg") ? "ogg" : type.includes("mp4") ? "m4a" : "webm";
    transcribe(new Blob(chunks, { type }), "recording." + ext);
  };
  recorder.start();
  $("record").classList.add("on");
  $("record").textContent = "Stop";
  setStatus("Recording… press Stop to transcribe.");
});

init().catch((e) => setStatus("Cannot reach the server: " + e, true));
