// Passkeys in the ownership console: the one script it serves, loaded only by the
// passkeys page and the sign-in page (Content-Security-Policy: scripts from this origin
// only, nothing inline). It runs the browser's half of the WebAuthn ceremonies: it asks
// the server for options, hands them to navigator.credentials, and posts the answer back.
// Every check happens on the server; this file only converts between JSON and bytes.
"use strict";

(function () {
  function toBytes(text) {
    var b64 = text.replace(/-/g, "+").replace(/_/g, "/");
    while (b64.length % 4) {
      b64 += "=";
    }
    var raw = atob(b64);
    var out = new Uint8Array(raw.length);
    for (var i = 0; i < raw.length; i++) {
      out[i] = raw.charCodeAt(i);
    }
    return out.buffer;
  }

  function toText(buffer) {
    var bytes = new Uint8Array(buffer);
    var raw = "";
    for (var i = 0; i < bytes.length; i++) {
      raw += String.fromCharCode(bytes[i]);
    }
    return btoa(raw).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }

  function say(text) {
    var box = document.getElementById("passkey-message");
    if (box) {
      box.textContent = text;
      box.hidden = false;
    }
  }

  // POSTs a form-encoded body; resolves with the JSON answer, rejects with its message.
  function post(url, fields) {
    var body = new URLSearchParams(fields);
    return fetch(url, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/x-www-form-urlencoded" },
      body: body.toString()
    }).then(function (res) {
      return res.json().catch(function () {
        return { error: "The server answered " + res.status + "." };
      }).then(function (json) {
        if (!res.ok || json.error) {
          throw new Error(json.error || "The server answered " + res.status + ".");
        }
        return json;
      });
    });
  }

  function failed(error) {
    if (error && error.name === "NotAllowedError") {
      say("The passkey request was cancelled or timed out.");
    } else {
      say((error && error.message) || "Something went wrong.");
    }
  }

  // One ceremony: options from `prefix + "/options"`, the browser's `call` with them,
  // the answer (`encode`d) to `prefix`, then wherever the server says.
  function ceremony(prefix, fields, call, encode) {
    post(prefix + "/options", fields)
      .then(function (answer) {
        var pk = answer.options.publicKey;
        pk.challenge = toBytes(pk.challenge);
        if (pk.user) {
          pk.user.id = toBytes(pk.user.id);
        }
        (pk.excludeCredentials || []).concat(pk.allowCredentials || []).forEach(function (c) {
          c.id = toBytes(c.id);
        });
        return call({ publicKey: pk }).then(function (cred) {
          var credential = {
            id: cred.id,
            rawId: toText(cred.rawId),
            type: cred.type,
            response: encode(cred.response),
            extensions: cred.getClientExtensionResults()
          };
          return post(prefix, {
            csrf: fields.csrf,
            ceremony: answer.ceremony,
            credential: JSON.stringify(credential)
          });
        });
      })
      .then(function (done) {
        window.location.assign(done.redirect);
      })
      .catch(failed);
  }

  function register(form) {
    var fields = {
      csrf: form.getAttribute("data-csrf"),
      label: form.querySelector("input[name=label]").value
    };
    ceremony("/console/passkeys/register", fields, function (options) {
      return navigator.credentials.create(options);
    }, function (r) {
      return {
        attestationObject: toText(r.attestationObject),
        clientDataJSON: toText(r.clientDataJSON),
        transports: r.getTransports ? r.getTransports() : undefined
      };
    });
  }

  function signIn(box) {
    ceremony("/console/passkeys/login", { csrf: box.getAttribute("data-csrf") }, function (options) {
      return navigator.credentials.get(options);
    }, function (r) {
      return {
        authenticatorData: toText(r.authenticatorData),
        clientDataJSON: toText(r.clientDataJSON),
        signature: toText(r.signature),
        userHandle: r.userHandle ? toText(r.userHandle) : null
      };
    });
  }

  function start() {
    var supported = !!(window.PublicKeyCredential && navigator.credentials);
    var form = document.getElementById("passkey-register");
    if (form) {
      if (!supported) {
        say("This browser does not support passkeys.");
      }
      form.addEventListener("submit", function (event) {
        event.preventDefault();
        register(form);
      });
    }
    var box = document.getElementById("passkey-sign-in");
    var button = document.getElementById("passkey-sign-in-button");
    if (box && button) {
      if (!supported) {
        say("This browser does not support passkeys.");
        return;
      }
      button.hidden = false;
      button.addEventListener("click", function () {
        signIn(box);
      });
    }
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
