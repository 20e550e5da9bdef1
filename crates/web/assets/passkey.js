// magiclink's passkey controls: "Sign in with a passkey" and passkey autofill on the sign-in
// page, and adding, renaming and deleting passkeys on the account page. Served by magiclink
// itself ({base}/passkey.js) under a `script-src 'self'` policy; it talks only to magiclink's
// JSON API ({base}/signin/passkey, {base}/callback/passkey, {base}/passkeys...), sending the
// page's CSRF token in X-CSRF-Token. Without it (or without WebAuthn) the controls stay hidden
// and the pages work as before: the email link is always there.
"use strict";

(function () {
  const webauthn = typeof window.PublicKeyCredential === "function" && navigator.credentials;

  // base64url <-> bytes, for browsers without PublicKeyCredential.parse*FromJSON / toJSON.
  function fromBase64url(text) {
    const base64 = text.replace(/-/g, "+").replace(/_/g, "/");
    const binary = atob(base64 + "===".slice((base64.length + 3) % 4));
    return Uint8Array.from(binary, (c) => c.charCodeAt(0)).buffer;
  }
  function toBase64url(buffer) {
    const bytes = new Uint8Array(buffer);
    let binary = "";
    for (const byte of bytes) binary += String.fromCharCode(byte);
    return btoa(binary).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }
  function creationOptions(json) {
    if (PublicKeyCredential.parseCreationOptionsFromJSON) return PublicKeyCredential.parseCreationOptionsFromJSON(json);
    const options = Object.assign({}, json, { challenge: fromBase64url(json.challenge) });
    options.user = Object.assign({}, json.user, { id: fromBase64url(json.user.id) });
    options.excludeCredentials = (json.excludeCredentials || []).map((c) => Object.assign({}, c, { id: fromBase64url(c.id) }));
    return options;
  }
  function requestOptions(json) {
    if (PublicKeyCredential.parseRequestOptionsFromJSON) return PublicKeyCredential.parseRequestOptionsFromJSON(json);
    const options = Object.assign({}, json, { challenge: fromBase64url(json.challenge) });
    options.allowCredentials = (json.allowCredentials || []).map((c) => Object.assign({}, c, { id: fromBase64url(c.id) }));
    return options;
  }
  function credentialJSON(credential) {
    if (typeof credential.toJSON === "function") return credential.toJSON();
    const response = {};
    for (const key of ["clientDataJSON", "attestationObject", "authenticatorData", "signature", "userHandle"]) {
      if (credential.response[key]) response[key] = toBase64url(credential.response[key]);
    }
    if (credential.response.getTransports) response.transports = credential.response.getTransports();
    return {
      id: credential.id,
      rawId: toBase64url(credential.rawId),
      type: credential.type,
      response: response,
      clientExtensionResults: credential.getClientExtensionResults(),
      authenticatorAttachment: credential.authenticatorAttachment || undefined,
    };
  }

  // One JSON call to magiclink's API; resolves to the parsed body, rejects with the problem.
  async function call(root, method, path, body) {
    const headers = { "X-CSRF-Token": root.dataset.csrf, Accept: "application/json" };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    const response = await fetch(root.dataset.base + path, {
      method: method,
      headers: headers,
      credentials: "same-origin",
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await response.text();
    const parsed = text ? JSON.parse(text) : null;
    if (!response.ok) throw Object.assign(new Error("problem"), { problem: parsed || {}, status: response.status });
    return parsed;
  }

  // What to tell the person: cancelled, their sign-in too old, or a plain failure.
  function say(root, error) {
    const message = root.querySelector("[data-passkey-message]");
    if (!message) return;
    let key = "failed";
    if (error && error.name === "NotAllowedError") key = "cancelled";
    else if (error && error.problem && error.problem.type && /reauthentication-required$/.test(error.problem.type)) key = "reauth";
    else if (error && error.problem && error.problem.type && /rate-limited/.test(error.problem.type)) key = "limited";
    message.textContent = message.dataset[key] || message.dataset.failed;
    message.hidden = false;
  }

  // The sign-in page: the button, and passkeys offered in the email field's autofill.
  function signInPage(root) {
    let conditional = null;
    async function signIn(mediation) {
      const options = await call(root, "POST", "/signin/passkey");
      const request = { publicKey: requestOptions(options) };
      if (mediation) {
        conditional = new AbortController();
        request.mediation = "conditional";
        request.signal = conditional.signal;
      }
      const credential = await navigator.credentials.get(request);
      const signedIn = await call(root, "POST", "/callback/passkey", {
        credential: credentialJSON(credential),
        callbackUrl: root.dataset.callbackUrl || null,
      });
      window.location.assign(signedIn.url);
    }
    root.hidden = false;
    root.querySelector("[data-passkey-sign-in]").addEventListener("click", () => {
      if (conditional) conditional.abort();
      conditional = null;
      signIn(false).catch((error) => say(root, error));
    });
    if (PublicKeyCredential.isConditionalMediationAvailable) {
      PublicKeyCredential.isConditionalMediationAvailable().then((available) => {
        if (!available) return;
        signIn(true).catch((error) => {
          // Aborted for the button, or never chosen: the email form stays as it was.
          if (error && error.name === "AbortError") return;
          say(root, error);
        });
      });
    }
  }

  // The account page: add, rename, delete; and, once, the offer to add one.
  function accountPage(root) {
    root.hidden = false;
    async function add() {
      const options = await call(root, "POST", "/passkeys/registration");
      const credential = await navigator.credentials.create({ publicKey: creationOptions(options) });
      await call(root, "POST", "/passkeys", { credential: credentialJSON(credential) });
      window.location.reload();
    }
    for (const button of root.querySelectorAll("[data-passkey-add]")) {
      button.addEventListener("click", () => add().catch((error) => say(root, error)));
    }
    for (const row of root.querySelectorAll("[data-passkey-id]")) {
      const id = row.dataset.passkeyId;
      row.querySelector("[data-passkey-rename]").addEventListener("click", () => {
        const name = row.querySelector("input").value;
        call(root, "PATCH", "/passkeys/" + encodeURIComponent(id), { name: name })
          .then(() => window.location.reload())
          .catch((error) => say(root, error));
      });
      row.querySelector("[data-passkey-delete]").addEventListener("click", () => {
        call(root, "DELETE", "/passkeys/" + encodeURIComponent(id))
          .then(() => window.location.reload())
          .catch((error) => say(root, error));
      });
    }
    const offer = root.querySelector("[data-passkey-offer]");
    const dismissed = "magiclink.passkey-offer-dismissed";
    if (offer && !window.localStorage.getItem(dismissed)) {
      PublicKeyCredential.isUserVerifyingPlatformAuthenticatorAvailable().then((available) => {
        if (!available) return;
        offer.hidden = false;
        offer.querySelector("[data-passkey-dismiss]").addEventListener("click", () => {
          window.localStorage.setItem(dismissed, "1");
          offer.hidden = true;
        });
      });
    }
  }

  if (!webauthn) return;
  const signIn = document.getElementById("passkey-sign-in");
  if (signIn) signInPage(signIn);
  const account = document.getElementById("passkeys");
  if (account) accountPage(account);
})();
