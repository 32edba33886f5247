// The signing page: show the whole document, enable signing once its last page was shown, and
// turn a drawn or typed signature into the PNG the form uploads.
//
// Drawing uses pointer events (mouse, pen and finger alike; touch-action is off on the pad so a
// stroke does not scroll the page). Typing renders the name in the vendored handwriting face
// (Ma Shan Zheng: Chinese and Latin; the browser fetches only the unicode-range slices the name
// needs). Either way the picture goes into the form's file input, exactly as an uploaded image
// would, so the server sees one kind of input. Without JavaScript the page still works: the
// document is a download link, and a signature image can be uploaded.
import { openPdf, showPages, toScreenBox } from "/static/js/pdfview.js";

const HANDWRITING = '"Ma Shan Zheng", "Kaiti SC", "STKaiti", KaiTi, cursive';
const INK = "#0b1f4d";

const fill = (text, values) => (text || "").replace(/\{(\w+)\}/g, (_, k) => values[k] ?? "");

function setupViewer(viewer, onRead) {
  const status = viewer.querySelector("[data-read-status]");
  const container = viewer.querySelector("[data-pages]");
  let highlights = [];
  try {
    highlights = JSON.parse(viewer.dataset.highlights || "[]");
  } catch {
    highlights = [];
  }
  const seen = new Set();
  let total = 0;
  const update = () => {
    if (!total) return;
    if (seen.has(total - 1)) {
      status.textContent = viewer.dataset.msgDone;
      viewer.dataset.read = "true";
      onRead();
    } else {
      status.textContent = fill(viewer.dataset.msgProgress, { seen: seen.size, total });
    }
  };
  openPdf(viewer.dataset.documentUrl)
    .then(async (doc) => {
      total = doc.numPages;
      const pages = await showPages(doc, container, {
        onSeen: (number) => {
          seen.add(number);
          update();
        },
      });
      for (const mark of highlights) {
        const entry = pages[mark.page < 0 ? pages.length + mark.page : mark.page];
        if (!entry) continue;
        const box = document.createElement("div");
        box.className = `pdf-highlight kind-${mark.kind}`;
        const r = toScreenBox(entry.viewport, mark.box);
        box.style.left = `${r.left}px`;
        box.style.top = `${r.top}px`;
        box.style.width = `${r.width}px`;
        box.style.height = `${r.height}px`;
        entry.layer.append(box);
      }
      update();
    })
    .catch(() => {
      status.textContent = viewer.dataset.msgFailed;
    });
}

function setupPad(canvas) {
  const context = canvas.getContext("2d");
  let drawing = false;
  let last = null;
  let inked = false;
  const point = (event) => {
    const rect = canvas.getBoundingClientRect();
    return {
      x: ((event.clientX - rect.left) * canvas.width) / rect.width,
      y: ((event.clientY - rect.top) * canvas.height) / rect.height,
    };
  };
  const stroke = (from, to) => {
    context.strokeStyle = INK;
    context.lineWidth = 5;
    context.lineCap = "round";
    context.lineJoin = "round";
    context.beginPath();
    context.moveTo(from.x, from.y);
    context.lineTo(to.x, to.y);
    context.stroke();
  };
  canvas.addEventListener("pointerdown", (event) => {
    event.preventDefault();
    canvas.setPointerCapture(event.pointerId);
    drawing = true;
    last = point(event);
    stroke(last, { x: last.x + 0.1, y: last.y + 0.1 });
    inked = true;
  });
  canvas.addEventListener("pointermove", (event) => {
    if (!drawing) return;
    const events = event.getCoalescedEvents ? event.getCoalescedEvents() : [event];
    for (const e of events.length ? events : [event]) {
      const next = point(e);
      stroke(last, next);
      last = next;
    }
  });
  const stop = () => {
    drawing = false;
  };
  canvas.addEventListener("pointerup", stop);
  canvas.addEventListener("pointercancel", stop);
  return {
    clear() {
      context.clearRect(0, 0, canvas.width, canvas.height);
      inked = false;
    },
    get inked() {
      return inked;
    },
  };
}

async function drawTyped(canvas, text) {
  const context = canvas.getContext("2d");
  context.clearRect(0, 0, canvas.width, canvas.height);
  text = text.trim();
  if (!text) return false;
  let size = 120;
  try {
    await document.fonts.load(`${size}px "Ma Shan Zheng"`, text);
  } catch {
    // the face could not load: the fallbacks in HANDWRITING still draw the name
  }
  context.font = `${size}px ${HANDWRITING}`;
  const room = canvas.width - 40;
  const width = context.measureText(text).width;
  if (width > room) size = Math.max(24, Math.floor((size * room) / width));
  context.font = `${size}px ${HANDWRITING}`;
  context.fillStyle = INK;
  context.textAlign = "center";
  context.textBaseline = "middle";
  context.fillText(text, canvas.width / 2, canvas.height / 2 + size * 0.05);
  return true;
}

function asFile(canvas) {
  return new Promise((resolve) => {
    canvas.toBlob((blob) => {
      resolve(blob ? new File([blob], "signature.png", { type: "image/png" }) : null);
    }, "image/png");
  });
}

const viewer = document.querySelector("[data-sign-viewer]");
const form = document.querySelector("[data-sign-form]");
if (form) {
  const button = form.querySelector("[data-sign-button]");
  const hint = form.querySelector("[data-sign-hint]");
  const upload = form.querySelector("[data-upload]");
  const uploadPanel = form.querySelector('[data-panel="upload"]');
  const modes = form.querySelector("[data-signature-modes]");
  const pad = setupPad(form.querySelector("[data-pad]"));
  const typed = form.querySelector("[data-typed]");
  const typedPreview = form.querySelector("[data-typed-preview]");
  let mode = "draw";
  let read = !viewer;

  button.disabled = !read;
  hint.textContent = form.dataset.msgReadFirst;
  hint.hidden = read;
  if (viewer) {
    setupViewer(viewer, () => {
      read = true;
      button.disabled = false;
      hint.hidden = true;
    });
  }

  modes.hidden = false;
  const choose = (next) => {
    mode = next;
    for (const tab of form.querySelectorAll("[data-mode]")) {
      tab.setAttribute("aria-selected", String(tab.dataset.mode === next));
    }
    for (const panel of form.querySelectorAll("[data-panel]")) {
      panel.hidden = panel.dataset.panel !== next;
    }
    if (next === "type") drawTyped(typedPreview, typed.value);
  };
  for (const tab of form.querySelectorAll("[data-mode]")) {
    tab.addEventListener("click", () => choose(tab.dataset.mode));
  }
  choose("draw");
  form.querySelector("[data-pad-clear]").addEventListener("click", () => pad.clear());
  typed.addEventListener("input", () => drawTyped(typedPreview, typed.value));

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    if (!read) {
      hint.textContent = form.dataset.msgReadFirst;
      hint.hidden = false;
      return;
    }
    let file = null;
    if (mode === "draw" && pad.inked) file = await asFile(form.querySelector("[data-pad]"));
    if (mode === "type" && (await drawTyped(typedPreview, typed.value))) file = await asFile(typedPreview);
    if (mode === "upload" && upload.files.length) file = upload.files[0];
    if (!file) {
      hint.textContent = form.dataset.msgNeedSignature;
      hint.hidden = false;
      return;
    }
    if (mode !== "upload") {
      const transfer = new DataTransfer();
      transfer.items.add(file);
      upload.files = transfer.files;
    }
    button.disabled = true;
    uploadPanel.hidden = true;
    form.submit();
  });
}
