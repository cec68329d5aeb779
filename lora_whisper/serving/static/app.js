// Plain browser JS, no build step: talks to the same server's OpenAI-compatible API.
"use strict";
const $ = (id) => document.getElementById(id);

// Long audio comes back in timed segments (Whisper's timestamp seeking): list them.
function clock(seconds) {
  const m = Math.floor(seconds / 60), s = Math.floor(seconds % 60);
  return m + ":" + String(s).padStart(2, "0");
}

function addSegment(seg) {
  const li = document.createElement("li");
  li.textContent = "[" + clock(seg.start) + "–" + clock(seg.end) + "] " + seg.text;
  $("segments").append(li);
}

// The server streams segments as server-sent events (stream=true) while it decodes: each
// `transcript.text.delta` is shown as it arrives, `transcript.text.done` closes the stream.
async function readEvents(response, onEvent) {
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += decoder.decode(value, { stream: true });
    let cut;
    while ((cut = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, cut);
      buffer = buffer.slice(cut + 2);
      for (const line of block.split("\n")) {
        if (line.startsWith("data: ") && line !== "data: [DONE]") onEvent(JSON.parse(line.slice(6)));
      }
    }
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
  form.append("stream", "true");
  setStatus("Transcribing " + filename + " …");
  $("transcript").textContent = "";
  $("segments").textContent = "";
  try {
    const r = await fetch("/v1/audio/transcriptions", { method: "POST", body: form, headers: headers() });
    if (!r.ok) {
      const body = await r.json();
      const msg = body.error ? body.error.message : JSON.stringify(body.detail || body);
      setStatus("Error " + r.status + ": " + msg, true);
      return;
    }
    let count = 0, failed = null;
    await readEvents(r, (ev) => {
      if (ev.type === "transcript.text.delta") {
        $("transcript").textContent += ev.delta;
        addSegment(ev.segment);
        count += 1;
        setStatus("Transcribing " + filename + " … " + clock(ev.segment.end));
      } else if (ev.type === "transcript.text.done") {
        $("transcript").textContent = ev.text || "(no speech recognised)";
        if (count < 2) $("segments").textContent = "";   // one segment: the transcript says it all
        const prob = ev.language_probability == null ? "" : " (p=" + ev.language_probability.toFixed(2) + ")";
        $("detected").textContent = ev.language + prob;
        $("expert").textContent = ev.expert || "none (bare backbone)";
        $("duration").textContent = ev.duration.toFixed(1) + " s";
      } else if (ev.type === "error") {
        failed = ev.error.message;
      }
    });
    if (failed) return setStatus("Error: " + failed, true);
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
