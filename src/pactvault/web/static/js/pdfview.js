// Showing a PDF with PDF.js, page after page, for the sending editor and the signing page.
//
// The vendored legacy ES module build, from /static only: the worker, character maps and
// standard fonts too. isEvalSupported is off (our CSP has no 'unsafe-eval', and a document must
// never get to run code), WebAssembly is off (no 'wasm-unsafe-eval': the JPEG 2000 decoder's
// pure-JS fallback is vendored instead), and no annotation layer or form is ever made live:
// pages are drawn onto canvases, read-only.
//
// Pages are laid out at once (their size is known) and drawn when they come near the screen,
// so a 200-page contract opens as fast as a 2-page one. showPages() reports every page that
// has actually been drawn and seen: the signing page enables its button once the last one was.
import * as pdfjs from "/static/vendor/pdfjs/pdf.min.mjs";

const VENDOR = "/static/vendor/pdfjs/";
pdfjs.GlobalWorkerOptions.workerSrc = VENDOR + "pdf.worker.min.mjs";

export function openPdf(source) {
  const options = {
    isEvalSupported: false,
    useWasm: false,
    enableXfa: false,
    wasmUrl: VENDOR + "wasm/",
    cMapUrl: VENDOR + "cmaps/",
    cMapPacked: true,
    standardFontDataUrl: VENDOR + "standard_fonts/",
    verbosity: 0,
  };
  if (source instanceof ArrayBuffer || ArrayBuffer.isView(source)) options.data = source;
  else options.url = source;
  return pdfjs.getDocument(options).promise;
}

// Lay out every page of `doc` in `container` and draw them as they come into view.
// Returns the pages: { number, wrapper, layer, viewport } (viewport: CSS pixels, for
// converting between the screen and PDF points). `onSeen(number)` is called once per page,
// when it has been drawn and at least a third of it was on screen.
export async function showPages(doc, container, { onSeen, onDrawn } = {}) {
  container.replaceChildren();
  const width = Math.max(200, Math.min(container.clientWidth || 800, 900));
  const ratio = Math.min(window.devicePixelRatio || 1, 2);
  const pages = [];
  for (let number = 1; number <= doc.numPages; number++) {
    const page = await doc.getPage(number);
    const unscaled = page.getViewport({ scale: 1 });
    const viewport = page.getViewport({ scale: width / unscaled.width });
    const wrapper = document.createElement("div");
    wrapper.className = "pdf-page";
    wrapper.dataset.page = String(number - 1);
    wrapper.style.width = `${viewport.width}px`;
    wrapper.style.height = `${viewport.height}px`;
    const canvas = document.createElement("canvas");
    canvas.width = Math.floor(viewport.width * ratio);
    canvas.height = Math.floor(viewport.height * ratio);
    canvas.style.width = `${viewport.width}px`;
    canvas.style.height = `${viewport.height}px`;
    const layer = document.createElement("div");
    layer.className = "pdf-layer";
    wrapper.append(canvas, layer);
    container.append(wrapper);
    pages.push({ number: number - 1, page, wrapper, canvas, layer, viewport, ratio, drawn: null });
  }

  const seen = new Set();
  const visible = new Set();
  const draw = (entry) => {
    if (!entry.drawn) {
      const transform = entry.ratio !== 1 ? [entry.ratio, 0, 0, entry.ratio, 0, 0] : null;
      entry.drawn = entry.page
        .render({
          canvasContext: entry.canvas.getContext("2d"),
          canvas: entry.canvas,
          viewport: entry.viewport,
          transform,
        })
        .promise.then(() => {
          entry.wrapper.classList.add("drawn");
          if (onDrawn) onDrawn(entry.number);
          if (visible.has(entry.number)) markSeen(entry.number);
        });
    }
    return entry.drawn;
  };
  const markSeen = (number) => {
    if (seen.has(number) || !pages[number].wrapper.classList.contains("drawn")) return;
    seen.add(number);
    if (onSeen) onSeen(number);
  };
  const nearby = new IntersectionObserver(
    (entries) => {
      for (const item of entries) {
        if (item.isIntersecting) draw(pages[Number(item.target.dataset.page)]);
      }
    },
    { rootMargin: "600px 0px" },
  );
  const onScreen = new IntersectionObserver(
    (entries) => {
      for (const item of entries) {
        const number = Number(item.target.dataset.page);
        if (item.isIntersecting) {
          visible.add(number);
          markSeen(number);
        } else {
          visible.delete(number);
        }
      }
    },
    { threshold: [0.33] },
  );
  for (const entry of pages) {
    nearby.observe(entry.wrapper);
    onScreen.observe(entry.wrapper);
  }
  return pages;
}

// A rectangle in CSS pixels of a page → [x1, y1, x2, y2] in PDF points (origin bottom left).
export function toPdfBox(viewport, left, top, width, height) {
  const [ax, ay] = viewport.convertToPdfPoint(left, top);
  const [bx, by] = viewport.convertToPdfPoint(left + width, top + height);
  const round = (v) => Math.round(v * 100) / 100;
  return [
    round(Math.min(ax, bx)),
    round(Math.min(ay, by)),
    round(Math.max(ax, bx)),
    round(Math.max(ay, by)),
  ];
}

// [x1, y1, x2, y2] in PDF points → { left, top, width, height } in CSS pixels of the page.
export function toScreenBox(viewport, box) {
  const [x1, y1, x2, y2] = viewport.convertToViewportRectangle(box);
  return {
    left: Math.min(x1, x2),
    top: Math.min(y1, y2),
    width: Math.abs(x2 - x1),
    height: Math.abs(y2 - y1),
  };
}
