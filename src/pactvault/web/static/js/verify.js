// The verify page's drop zone: drop a PDF anywhere on it (or choose one) and it is checked at
// once. The form posts normally without JavaScript; htmx swaps only the result when present.
const zone = document.querySelector("[data-dropzone]");
const input = document.querySelector("[data-dropzone-input]");
const label = document.querySelector("[data-dropzone-name]");
const form = input ? input.form : null;

function submit() {
  if (!form || !input.files || input.files.length === 0) return;
  if (label) label.textContent = input.files[0].name;
  form.requestSubmit();
}

if (zone && input && form) {
  input.addEventListener("change", submit);
  for (const name of ["dragenter", "dragover"]) {
    zone.addEventListener(name, (event) => {
      event.preventDefault();
      zone.classList.add("dragging");
    });
  }
  for (const name of ["dragleave", "dragend"]) {
    zone.addEventListener(name, () => zone.classList.remove("dragging"));
  }
  zone.addEventListener("drop", (event) => {
    event.preventDefault();
    zone.classList.remove("dragging");
    const files = event.dataTransfer ? event.dataTransfer.files : null;
    if (!files || files.length === 0) return;
    input.files = files;
    submit();
  });
}
