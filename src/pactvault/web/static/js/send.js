// The sending editor: preview the PDF, place each signer's fields by dragging them onto the
// pages, and upload the draft with a progress bar.
//
// Fields live in PDF points (origin bottom left) in `fields`; what is on screen is drawn from
// them, so a re-render at another width (rotating a tablet) keeps every field where it was.
// The hidden "fields" input always holds them as JSON: [{signer, kind, page, box, required,
// label}], `signer` being the index of the signer's row in the form. Strings come from data-
// attributes of the form (translated by the server); nothing here is inline or eval'd.
import { openPdf, showPages, toPdfBox, toScreenBox } from "/static/js/pdfview.js";

const form = document.querySelector("[data-send-form]");
const SIZES = { signature: [170, 64], date: [110, 22], text: [200, 22], seal: [120, 120] };
const COLOURS = 6;

if (form) {
  const msg = (name, values = {}) =>
    (form.dataset[name] || "").replace(/\{(\w+)\}/g, (_, key) => values[key] ?? "");
  const fieldsInput = form.querySelector("[data-fields]");
  const pagesBox = form.querySelector("[data-pages]");
  const editor = form.querySelector("[data-editor]");
  const fileInput = form.querySelector("[data-file]");
  const fileError = form.querySelector("[data-file-error]");
  const formError = form.querySelector("[data-form-error]");
  const progress = form.querySelector("[data-progress]");
  const progressBar = form.querySelector("[data-progress] progress");
  const progressText = form.querySelector("[data-progress-text]");
  const rowsBox = form.querySelector("[data-signer-rows]");
  const rowTemplate = form.querySelector("[data-signer-template]");
  const signerSelect = form.querySelector("[data-tool-signer]");
  const panel = form.querySelector("[data-field-panel]");
  const panelLabel = form.querySelector("[data-field-label]");
  const panelRequired = form.querySelector("[data-field-required]");
  const panelSigner = form.querySelector("[data-field-signer]");
  const maxBytes = Number(form.dataset.maxBytes || 0);

  let nextId = 1;
  let fields = [];
  try {
    fields = JSON.parse(fieldsInput.value || "[]").map((f) => ({ ...f, id: nextId++ }));
  } catch {
    fields = [];
  }
  let pages = [];
  let selected = null;
  let justDragged = false;

  editor.hidden = false;
  form.querySelector("[data-no-js-note]")?.remove();
  const offset = form.querySelector("[data-tz-offset]");
  if (offset) offset.value = String(-new Date().getTimezoneOffset());
  const deadline = form.querySelector("[data-deadline]");
  if (deadline && deadline.dataset.expiresAt) {
    const when = new Date(deadline.dataset.expiresAt);
    const pad = (n) => String(n).padStart(2, "0");
    deadline.value = `${when.getFullYear()}-${pad(when.getMonth() + 1)}-${pad(when.getDate())}`;
  }

  // -- signer rows ------------------------------------------------------------------------------

  const rows = () => [...rowsBox.querySelectorAll("[data-signer-row]")];
  const signerLabel = (index) => {
    const row = rows()[index];
    if (!row) return msg("msgSignerN", { n: index + 1 });
    const name = row.querySelector("[name=signer_name]").value.trim();
    const email = row.querySelector("[name=signer_email]").value.trim();
    return name || email || msg("msgSignerN", { n: index + 1 });
  };
  const refreshSigners = () => {
    const count = rows().length;
    rows().forEach((row, index) => {
      row.querySelector("[data-row-title]").textContent = msg("msgSignerN", { n: index + 1 });
      row.classList.remove(...[...Array(COLOURS).keys()].map((c) => `c${c}`));
      row.classList.add(`c${index % COLOURS}`);
      const remove = row.querySelector("[data-remove-signer]");
      if (remove) remove.hidden = count < 2;
    });
    for (const select of [signerSelect, panelSigner]) {
      const keep = select.value;
      select.replaceChildren(
        ...rows().map((_, index) => new Option(signerLabel(index), String(index))),
      );
      if (Number(keep) < count) select.value = keep;
    }
    drawFields();
  };
  form.querySelector("[data-add-signer]")?.addEventListener("click", () => {
    const fragment = rowTemplate.content.cloneNode(true);
    const order = fragment.querySelector("[name=signer_order]");
    if (order) order.value = String(rows().length + 1);
    rowsBox.append(fragment);
    refreshSigners();
    signerSelect.value = String(rows().length - 1);
    rows().at(-1).querySelector("[name=signer_name]").focus();
  });
  form.querySelector("[data-add-signer]")?.removeAttribute("hidden");
  rowsBox.addEventListener("click", (event) => {
    const button = event.target.closest("[data-remove-signer]");
    if (!button) return;
    const index = rows().indexOf(button.closest("[data-signer-row]"));
    if (index < 0) return;
    rows()[index].remove();
    fields = fields
      .filter((f) => f.signer !== index)
      .map((f) => (f.signer > index ? { ...f, signer: f.signer - 1 } : f));
    if (selected && !fields.some((f) => f.id === selected)) selectField(null);
    save();
    refreshSigners();
  });
  rowsBox.addEventListener("input", (event) => {
    if (event.target.matches("[name=signer_name], [name=signer_email]")) refreshSigners();
  });

  // -- fields -----------------------------------------------------------------------------------

  const save = () => {
    fieldsInput.value = JSON.stringify(
      fields.map(({ signer, kind, page, box, required, label }) => ({
        signer,
        kind,
        page,
        box,
        required: required !== false,
        label: label || null,
      })),
    );
  };

  const element = (field) => {
    const box = document.createElement("div");
    box.className = `pdf-field kind-${field.kind} c${field.signer % COLOURS}`;
    box.dataset.fieldId = String(field.id);
    box.dataset.kind = field.kind;
    box.dataset.signer = String(field.signer);
    box.tabIndex = 0;
    box.setAttribute("role", "button");
    const text = document.createElement("span");
    text.className = "pdf-field-text";
    const kindName = msg(`kind${field.kind[0].toUpperCase()}${field.kind.slice(1)}`);
    text.textContent = `${signerLabel(field.signer)} · ${field.label || kindName}`;
    box.setAttribute("aria-label", text.textContent);
    const remove = document.createElement("button");
    remove.type = "button";
    remove.className = "pdf-field-remove";
    remove.textContent = "×";
    remove.setAttribute("aria-label", msg("msgRemoveField"));
    const handle = document.createElement("span");
    handle.className = "pdf-field-resize";
    box.append(text, remove, handle);
    if (field.id === selected) box.classList.add("selected");
    return box;
  };

  const place = (node, field) => {
    const entry = pages[field.page];
    const rect = toScreenBox(entry.viewport, field.box);
    node.style.left = `${rect.left}px`;
    node.style.top = `${rect.top}px`;
    node.style.width = `${rect.width}px`;
    node.style.height = `${rect.height}px`;
  };

  function drawFields() {
    for (const entry of pages) entry.layer.replaceChildren();
    for (const field of fields) {
      if (!pages[field.page]) continue;
      const node = element(field);
      place(node, field);
      pages[field.page].layer.append(node);
    }
  }

  const clampBox = (entry, left, top, width, height) => {
    const maxW = entry.viewport.width;
    const maxH = entry.viewport.height;
    const w = Math.min(width, maxW);
    const h = Math.min(height, maxH);
    return {
      left: Math.max(0, Math.min(left, maxW - w)),
      top: Math.max(0, Math.min(top, maxH - h)),
      width: w,
      height: h,
    };
  };

  const addField = (kind, pageNumber, centreX, centreY) => {
    const entry = pages[pageNumber];
    const signer = Number(signerSelect.value || 0);
    if (kind === "signature") {
      // One signature per signer: placing it again moves it.
      fields = fields.filter((f) => !(f.kind === "signature" && f.signer === signer));
    }
    const scale = entry.viewport.scale;
    const [w, h] = SIZES[kind].map((v) => v * scale);
    const r = clampBox(entry, centreX - w / 2, centreY - h / 2, w, h);
    const field = {
      id: nextId++,
      signer,
      kind,
      page: pageNumber,
      box: toPdfBox(entry.viewport, r.left, r.top, r.width, r.height),
      required: true,
      label: null,
    };
    fields.push(field);
    selected = field.id;
    save();
    drawFields();
    selectField(field.id);
  };

  function selectField(id) {
    selected = id;
    for (const node of form.querySelectorAll(".pdf-field")) {
      node.classList.toggle("selected", node.dataset.fieldId === String(id));
    }
    const field = fields.find((f) => f.id === id);
    panel.hidden = !field;
    if (!field) return;
    panel.dataset.kind = field.kind;
    panelSigner.value = String(field.signer);
    panelLabel.value = field.label || "";
    panelRequired.checked = field.required !== false;
    panelLabel.closest("label").hidden = field.kind !== "text";
    panelRequired.closest("label").hidden = !(field.kind === "text" || field.kind === "seal");
  }

  panelLabel.addEventListener("input", () => {
    const field = fields.find((f) => f.id === selected);
    if (!field) return;
    field.label = panelLabel.value.slice(0, 64);
    save();
    drawFields();
  });
  panelRequired.addEventListener("change", () => {
    const field = fields.find((f) => f.id === selected);
    if (!field) return;
    field.required = panelRequired.checked;
    save();
  });
  panelSigner.addEventListener("change", () => {
    const field = fields.find((f) => f.id === selected);
    if (!field) return;
    const signer = Number(panelSigner.value);
    if (field.kind === "signature") {
      fields = fields.filter((f) => f === field || !(f.kind === "signature" && f.signer === signer));
    }
    field.signer = signer;
    save();
    drawFields();
  });
  form.querySelector("[data-field-delete]").addEventListener("click", () => {
    fields = fields.filter((f) => f.id !== selected);
    save();
    drawFields();
    selectField(null);
  });

  // Moving and resizing placed fields (pointer events: mouse, pen and finger alike).
  pagesBox.addEventListener("pointerdown", (event) => {
    const node = event.target.closest(".pdf-field");
    if (!node) return;
    const field = fields.find((f) => String(f.id) === node.dataset.fieldId);
    if (!field) return;
    if (event.target.closest(".pdf-field-remove")) {
      event.preventDefault();
      fields = fields.filter((f) => f !== field);
      save();
      drawFields();
      selectField(null);
      return;
    }
    event.preventDefault();
    selectField(field.id);
    const entry = pages[field.page];
    const resizing = Boolean(event.target.closest(".pdf-field-resize"));
    const start = { x: event.clientX, y: event.clientY };
    const from = toScreenBox(entry.viewport, field.box);
    const min = 10 * entry.viewport.scale;
    node.setPointerCapture(event.pointerId);
    const move = (e) => {
      const dx = e.clientX - start.x;
      const dy = e.clientY - start.y;
      const r = resizing
        ? clampBox(entry, from.left, from.top, Math.max(min, from.width + dx), Math.max(min, from.height + dy))
        : clampBox(entry, from.left + dx, from.top + dy, from.width, from.height);
      field.box = toPdfBox(entry.viewport, r.left, r.top, r.width, r.height);
      place(node, field);
    };
    const end = () => {
      node.removeEventListener("pointermove", move);
      node.removeEventListener("pointerup", end);
      node.removeEventListener("pointercancel", end);
      save();
    };
    node.addEventListener("pointermove", move);
    node.addEventListener("pointerup", end);
    node.addEventListener("pointercancel", end);
  });
  pagesBox.addEventListener("keydown", (event) => {
    const node = event.target.closest(".pdf-field");
    if (!node) return;
    const field = fields.find((f) => String(f.id) === node.dataset.fieldId);
    const steps = { ArrowLeft: [-1, 0], ArrowRight: [1, 0], ArrowUp: [0, 1], ArrowDown: [0, -1] };
    if (event.key === "Delete" || event.key === "Backspace") {
      fields = fields.filter((f) => f !== field);
      save();
      drawFields();
      selectField(null);
      event.preventDefault();
    } else if (steps[event.key]) {
      const [dx, dy] = steps[event.key].map((v) => v * (event.shiftKey ? 10 : 2));
      const [x1, y1, x2, y2] = field.box;
      const entry = pages[field.page];
      const [pw, ph] = [entry.viewport.viewBox[2], entry.viewport.viewBox[3]];
      const mx = Math.max(-x1, Math.min(dx, pw - x2));
      const my = Math.max(-y1, Math.min(dy, ph - y2));
      field.box = [x1 + mx, y1 + my, x2 + mx, y2 + my];
      place(node, field);
      save();
      event.preventDefault();
    } else if (event.key === "Enter" || event.key === " ") {
      selectField(field.id);
      event.preventDefault();
    }
  });

  // Dragging a new field from the tools onto a page.
  const pageAt = (x, y) => {
    const hit = document.elementFromPoint(x, y)?.closest(".pdf-page");
    return hit && pagesBox.contains(hit) ? hit : null;
  };
  const visiblePage = () => {
    let best = 0;
    let bestArea = -1;
    for (const entry of pages) {
      const r = entry.wrapper.getBoundingClientRect();
      const area = Math.max(0, Math.min(r.bottom, innerHeight) - Math.max(r.top, 0));
      if (area > bestArea) [best, bestArea] = [entry.number, area];
    }
    return best;
  };
  for (const tool of form.querySelectorAll("[data-tool]")) {
    const kind = tool.dataset.tool;
    tool.addEventListener("pointerdown", (event) => {
      if (!pages.length) return;
      event.preventDefault();
      tool.setPointerCapture(event.pointerId);
      const ghost = document.createElement("div");
      ghost.className = `pdf-ghost kind-${kind}`;
      ghost.textContent = tool.textContent.trim();
      let moved = false;
      const start = { x: event.clientX, y: event.clientY };
      const follow = (e) => {
        if (!moved && Math.hypot(e.clientX - start.x, e.clientY - start.y) > 6) {
          moved = true;
          document.body.append(ghost);
        }
        ghost.style.left = `${e.clientX}px`;
        ghost.style.top = `${e.clientY}px`;
      };
      const drop = (e) => {
        tool.removeEventListener("pointermove", follow);
        tool.removeEventListener("pointerup", drop);
        tool.removeEventListener("pointercancel", cancel);
        ghost.remove();
        if (!moved) return;
        justDragged = true;
        const hit = pageAt(e.clientX, e.clientY);
        if (!hit) return;
        const rect = hit.getBoundingClientRect();
        addField(kind, Number(hit.dataset.page), e.clientX - rect.left, e.clientY - rect.top);
      };
      const cancel = () => {
        tool.removeEventListener("pointermove", follow);
        tool.removeEventListener("pointerup", drop);
        ghost.remove();
      };
      tool.addEventListener("pointermove", follow);
      tool.addEventListener("pointerup", drop);
      tool.addEventListener("pointercancel", cancel);
    });
    // A click (or Enter) without dragging puts the field in the middle of the page in view.
    tool.addEventListener("click", () => {
      if (justDragged) {
        justDragged = false;
        return;
      }
      if (!pages.length) return;
      const entry = pages[visiblePage()];
      addField(kind, entry.number, entry.viewport.width / 2, entry.viewport.height / 2);
    });
  }

  // -- the document -----------------------------------------------------------------------------

  let shown = null;
  const show = async (source) => {
    fileError.hidden = true;
    try {
      const doc = await openPdf(source);
      shown = doc;
      pages = await showPages(doc, pagesBox);
      fields = fields.filter((f) => f.page < pages.length);
      save();
      drawFields();
      form.querySelector("[data-tools]").hidden = false;
    } catch {
      pages = [];
      pagesBox.replaceChildren();
      form.querySelector("[data-tools]").hidden = true;
      fileError.textContent = msg("msgNotPdf");
      fileError.hidden = false;
    }
  };
  fileInput.addEventListener("change", async () => {
    const file = fileInput.files[0];
    if (!file) return;
    if (maxBytes && file.size > maxBytes) {
      fileError.textContent = msg("msgTooLarge", { mb: form.dataset.maxMb });
      fileError.hidden = false;
      return;
    }
    await show(await file.arrayBuffer());
  });
  if (form.dataset.documentUrl) show(form.dataset.documentUrl);
  let resizeTimer = null;
  let lastWidth = pagesBox.clientWidth;
  window.addEventListener("resize", () => {
    clearTimeout(resizeTimer);
    resizeTimer = setTimeout(async () => {
      if (!shown || Math.abs(pagesBox.clientWidth - lastWidth) < 20) return;
      lastWidth = pagesBox.clientWidth;
      pages = await showPages(shown, pagesBox);
      drawFields();
    }, 250);
  });

  // -- saving, with upload progress ---------------------------------------------------------------

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    formError.hidden = true;
    const file = fileInput.files[0];
    if (file && maxBytes && file.size > maxBytes) {
      formError.textContent = msg("msgTooLarge", { mb: form.dataset.maxMb });
      formError.hidden = false;
      return;
    }
    save();
    const data = new FormData(form, event.submitter);
    const buttons = form.querySelectorAll("button[type=submit]");
    buttons.forEach((b) => (b.disabled = true));
    progress.hidden = false;
    progressBar.value = 0;
    progressText.textContent = msg("msgUploading", { percent: 0 });
    const request = new XMLHttpRequest();
    // getAttribute: the buttons named "action" shadow form.action.
    request.open("POST", form.getAttribute("action"));
    request.setRequestHeader("Accept", "application/json");
    request.upload.addEventListener("progress", (e) => {
      if (!e.lengthComputable) return;
      const percent = Math.round((e.loaded / e.total) * 100);
      progressBar.value = percent;
      progressText.textContent = msg("msgUploading", { percent });
    });
    request.upload.addEventListener("load", () => {
      progressBar.value = 100;
      progressText.textContent = msg("msgProcessing");
    });
    const failed = (text) => {
      buttons.forEach((b) => (b.disabled = false));
      progress.hidden = true;
      formError.textContent = text || msg("msgFailed");
      formError.hidden = false;
      formError.scrollIntoView({ block: "center" });
    };
    request.addEventListener("load", () => {
      let body = null;
      try {
        body = JSON.parse(request.responseText);
      } catch {
        body = null;
      }
      if (request.status < 300 && body && body.location) {
        location.assign(body.location);
        return;
      }
      if (body && body.location) {
        // Saved as a draft but not sent: the next attempt updates that draft.
        form.setAttribute("action", body.location.split("?")[0]);
        fileInput.required = false;
      }
      failed(body && body.error);
    });
    request.addEventListener("error", () => failed(msg("msgNetwork")));
    request.send(data);
  });

  refreshSigners();
}
