// The REST API as the console uses it: the key lives in this tab's sessionStorage only.
export const KEY_NAME = "voxline.apiKey";

export class Unauthorized extends Error {}

export function getKey() {
  return sessionStorage.getItem(KEY_NAME);
}

export function setKey(key) {
  sessionStorage.setItem(KEY_NAME, key);
}

export function clearKey() {
  sessionStorage.removeItem(KEY_NAME);
}

function authHeaders(key = getKey()) {
  return key ? { Authorization: `Bearer ${key}` } : {};
}

async function failure(response) {
  let message = `${response.status} ${response.statusText}`;
  try {
    const body = await response.json();
    if (body && body.message) message = `${response.status}: ${body.message}`;
  } catch {
    // not JSON: keep the status line
  }
  return response.status === 401 ? new Unauthorized(message) : new Error(message);
}

/** A JSON request to the API with the stored key (or `key`, to try a key before keeping it). */
export async function api(path, { method = "GET", body, key } = {}) {
  const headers = { ...authHeaders(key ?? getKey()), Accept: "application/json" };
  const init = { method, headers };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const response = await fetch(path, init);
  if (!response.ok) {
    const error = await failure(response);
    if (error instanceof Unauthorized && key === undefined) signedOut();
    throw error;
  }
  return response.status === 204 ? null : response.json();
}

/** The stored key was refused: forget it and let the page ask again. */
function signedOut() {
  clearKey();
  window.dispatchEvent(new CustomEvent("voxline:signed-out", { detail: "The API key was refused." }));
}

/** Signed file URLs carry their own authority; the others need the key, sent to this server only. */
function fileRequest(url) {
  const parsed = new URL(url, location.href);
  if (parsed.searchParams.has("signature")) return { url: parsed.href, headers: {} };
  const local = parsed.pathname.startsWith("/v2/call-files/") ? new URL(parsed.pathname, location.origin) : parsed;
  const headers = local.origin === location.origin ? authHeaders() : {};
  return { url: local.href, headers };
}

/** A call file (recording, log) as a Blob. */
export async function fetchFile(url) {
  const request = fileRequest(url);
  const response = await fetch(request.url, { headers: request.headers });
  if (!response.ok) {
    const error = await failure(response);
    if (error instanceof Unauthorized && request.headers.Authorization) signedOut();
    throw error;
  }
  return response.blob();
}
