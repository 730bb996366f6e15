// The service's JSON API (docs/HTTP_API.md): the session's CSRF token, requests, errors.

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message || code || `HTTP ${status}`);
    this.status = status;
    this.code = code || `HTTP_${status}`;
  }

  get text() {
    return this.code && this.message !== this.code ? `${this.message} (${this.code})` : this.message;
  }
}

let csrfToken = null; // in memory only: a reloaded page asks GET /api/session for it

export function setCsrfToken(token) {
  csrfToken = token;
}

async function errorOf(response) {
  let body = {};
  try {
    body = await response.json();
  } catch {
    // not JSON (a proxy's page): the status says enough
  }
  return new ApiError(response.status, body.error, body.message);
}

// A JSON request; resolves to the decoded answer (null for 204), rejects with an ApiError.
export async function api(method, path, body) {
  const headers = { Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (method !== "GET" && csrfToken) headers["X-CSRF-Token"] = csrfToken;
  let response;
  try {
    response = await fetch(path, {
      method, headers, body: body === undefined ? undefined : JSON.stringify(body), credentials: "same-origin",
    });
  } catch (error) {
    throw new ApiError(0, "ERROR_NETWORK", "The service cannot be reached: " + error.message);
  }
  if (!response.ok) throw await errorOf(response);
  return response.status === 204 ? null : response.json();
}

// POST multipart `form` to `path` with upload progress (onProgress gets 0..1); resolves to the JSON answer.
export function upload(path, form, onProgress) {
  return new Promise((resolve, reject) => {
    const request = new XMLHttpRequest();
    request.open("POST", path);
    if (csrfToken) request.setRequestHeader("X-CSRF-Token", csrfToken);
    request.responseType = "json";
    request.upload.addEventListener("progress", (event) => {
      if (event.lengthComputable) onProgress(event.loaded / event.total);
    });
    request.addEventListener("load", () => {
      const body = request.response || {};
      if (request.status >= 200 && request.status < 300) resolve(body);
      else reject(new ApiError(request.status, body.error, body.message));
    });
    request.addEventListener("error", () => reject(new ApiError(0, "ERROR_NETWORK", "The upload was cut off")));
    request.send(form);
  });
}
