// Passkeys (WebAuthn): registering one (navigator.credentials.create) and signing in with one
// (navigator.credentials.get). The server's options arrive as JSON with base64url binary fields;
// the credential goes back in a hidden form field and the form is submitted normally, so the
// outcome page (recovery codes, the next step) is the same as for every other factor.

function fromB64url(text) {
  const padded = text.replace(/-/g, "+").replace(/_/g, "/") + "===".slice((text.length + 3) % 4);
  return Uint8Array.from(atob(padded), (c) => c.charCodeAt(0)).buffer;
}

function toB64url(buffer) {
  let text = "";
  for (const byte of new Uint8Array(buffer)) text += String.fromCharCode(byte);
  return btoa(text).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

function creationOptions(json) {
  if (typeof PublicKeyCredential.parseCreationOptionsFromJSON === "function") {
    return PublicKeyCredential.parseCreationOptionsFromJSON(json);
  }
  return {
    ...json,
    challenge: fromB64url(json.challenge),
    user: { ...json.user, id: fromB64url(json.user.id) },
    excludeCredentials: (json.excludeCredentials || []).map((c) => ({ ...c, id: fromB64url(c.id) })),
  };
}

function requestOptions(json) {
  if (typeof PublicKeyCredential.parseRequestOptionsFromJSON === "function") {
    return PublicKeyCredential.parseRequestOptionsFromJSON(json);
  }
  return {
    ...json,
    challenge: fromB64url(json.challenge),
    allowCredentials: (json.allowCredentials || []).map((c) => ({ ...c, id: fromB64url(c.id) })),
  };
}

function credentialJSON(credential) {
  if (typeof credential.toJSON === "function") return credential.toJSON();
  const r = credential.response;
  const out = {
    id: credential.id,
    rawId: toB64url(credential.rawId),
    type: credential.type,
    authenticatorAttachment: credential.authenticatorAttachment || null,
    clientExtensionResults: credential.getClientExtensionResults(),
    response: { clientDataJSON: toB64url(r.clientDataJSON) },
  };
  if (r.attestationObject) {
    out.response.attestationObject = toB64url(r.attestationObject);
    out.response.transports = typeof r.getTransports === "function" ? r.getTransports() : [];
  } else {
    out.response.authenticatorData = toB64url(r.authenticatorData);
    out.response.signature = toB64url(r.signature);
    out.response.userHandle = r.userHandle ? toB64url(r.userHandle) : null;
  }
  return out;
}

function show(form, message) {
  const status = form.querySelector("[data-passkey-status]");
  if (!status) return;
  status.textContent = message;
  status.hidden = false;
}

function csrf(form) {
  const field = form.querySelector("input[name=csrf_token]");
  return field ? field.value : "";
}

const supported = typeof window.PublicKeyCredential === "function" && navigator.credentials;

async function register(form) {
  const response = await fetch(form.dataset.optionsUrl, {
    method: "POST",
    credentials: "same-origin",
    headers: { "X-CSRF-Token": csrf(form), Accept: "application/json" },
  });
  if (!response.ok) throw new Error(`options: ${response.status}`);
  const credential = await navigator.credentials.create({
    publicKey: creationOptions(await response.json()),
  });
  form.elements.credential.value = JSON.stringify(credentialJSON(credential));
  form.submit();
}

async function authenticate(form) {
  const options = requestOptions(JSON.parse(form.dataset.options));
  const credential = await navigator.credentials.get({ publicKey: options });
  form.elements.credential.value = JSON.stringify(credentialJSON(credential));
  form.submit();
}

for (const form of document.querySelectorAll("[data-passkey-create], [data-passkey-get]")) {
  const create = form.hasAttribute("data-passkey-create");
  if (!supported) continue; // stays hidden: the other factors remain
  form.hidden = false;
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const button = form.querySelector("button[type=submit]");
    if (button) button.disabled = true;
    (create ? register(form) : authenticate(form)).catch(() => {
      if (button) button.disabled = false;
      show(form, form.dataset.msgFailed);
    });
  });
}
