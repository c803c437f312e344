// The call console: sign-in, and hash routes #/calls and #/calls/<call_id>.
import { api, clearKey, getKey, setKey } from "./api.js";
import { renderCall } from "./call.js";
import { renderCalls } from "./calls.js";
import { clear, el } from "./dom.js";

const main = document.getElementById("main");
const signOutButton = document.getElementById("sign-out");
let renderId = 0;  // a newer route wins over a slower older one

function signInForm(message = "") {
  const input = el("input", {
    type: "password", id: "api-key", name: "api-key", autocomplete: "off", required: true, placeholder: "key_…",
  });
  const error = el("p", { class: "error", id: "sign-in-error", text: message });
  const form = el("form", { class: "card sign-in", id: "sign-in" },
    el("h1", { text: "Sign in" }),
    el("p", { text: "Your Voxline API key is kept in this tab only (sessionStorage) and sent as a header." }),
    el("label", {}, "API key", input),
    el("button", { type: "submit", text: "Sign in" }),
    error);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const key = input.value.trim();
    error.textContent = "";
    try {
      await api("/list-agents", { key });
    } catch (problem) {
      error.textContent = `That key did not work: ${problem.message}`;
      return;
    }
    setKey(key);
    route();
  });
  return [form, input];
}

function showSignIn(message) {
  signOutButton.hidden = true;
  const [form, input] = signInForm(message);
  clear(main).append(form);
  input.focus();
}

async function route() {
  const id = ++renderId;
  if (!getKey()) {
    showSignIn();
    return;
  }
  signOutButton.hidden = false;
  const view = el("div", { class: "view" });
  clear(main).append(view);
  const match = location.hash.match(/^#\/calls\/(.+)$/);
  document.body.dataset.view = match ? "call" : "calls";
  delete document.body.dataset.ready;
  try {
    if (match) await renderCall(view, decodeURIComponent(match[1]), route);
    else await renderCalls(view);
  } catch (problem) {
    if (id === renderId && getKey()) view.append(el("p", { class: "error", text: problem.message }));
  }
  if (id === renderId) document.body.dataset.ready = "true";
}

signOutButton.addEventListener("click", () => {
  clearKey();
  showSignIn();
});
window.addEventListener("voxline:signed-out", (event) => showSignIn(event.detail));
window.addEventListener("hashchange", route);
if (!location.hash) history.replaceState(null, "", "#/calls");
route();
