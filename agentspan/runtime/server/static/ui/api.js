// The runtime's HTTP API, as the pages use it. Same origin: the session cookie authenticates.

export class ApiError extends Error {
  constructor(status, type, message) {
    super(message);
    this.status = status;
    this.type = type;
  }
}

async function call(method, path, body) {
  const init = { method, headers: { Accept: "application/json" }, credentials: "same-origin" };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch (err) {
    throw new ApiError(0, "NetworkError", `the runtime server did not answer (${err.message}); is it running?`);
  }
  if (response.status === 401) {
    // The session ended (or the token changed): the server answers the page with its login form.
    window.location.reload();
    throw new ApiError(401, "UnauthorizedError", "sign in again");
  }
  if (response.status === 204) return null;
  const text = await response.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch { data = null; }
  if (!response.ok) {
    const error = data && data.error ? data.error : { type: "HTTPError", message: text || response.statusText };
    throw new ApiError(response.status, error.type, error.message);
  }
  return data;
}

const q = (params) => {
  const s = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== "") s.set(k, v);
  const text = s.toString();
  return text ? `?${text}` : "";
};

export const api = {
  executions: (params) => call("GET", `/api/executions${q({ summary: "true", ...params })}`),
  execution: (id) => call("GET", `/api/executions/${encodeURIComponent(id)}`),
  journal: (id) => call("GET", `/api/executions/${encodeURIComponent(id)}/journal?include_superseded=true`),
  events: (id, after) => call("GET", `/api/executions/${encodeURIComponent(id)}/events?after=${after || 0}&limit=10000`),
  cancel: (id) => call("POST", `/api/executions/${encodeURIComponent(id)}/cancel`),
  fork: (id, step) => call("POST", `/api/executions/${encodeURIComponent(id)}/fork`, { step }),
  approvals: (params) => call("GET", `/api/approvals${q(params || {})}`),
  approve: (id, args) => call("POST", `/api/approvals/${id}/approve`, args ? { arguments: args } : {}),
  reject: (id, reason) => call("POST", `/api/approvals/${id}/reject`, { reason }),
  respond: (id, value) => call("POST", `/api/approvals/${id}/respond`, { value }),
  prices: () => call("GET", "/api/prices"),
  streamUrl: (id, after) => `/api/executions/${encodeURIComponent(id)}/events/stream?after=${after || 0}`,
};
