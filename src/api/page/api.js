// The HTTP API as the page uses it: same-origin requests on the session cookie, JSON both
// ways, errors as `ApiError` with the server's `{"error": "…"}` text.

const BASE = '/api/v1/';

export class ApiError extends Error {
  constructor(status, message, body) {
    super(message);
    this.status = status;
    this.body = body;
  }
}

/** Called with every 401 (the session ended or never began). */
let onUnauthorized = () => {};
export function whenUnauthorized(callback) {
  onUnauthorized = callback;
}

async function call(method, path, body) {
  const init = { method, credentials: 'same-origin', headers: { Accept: 'application/json' } };
  if (body !== undefined) {
    init.headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(path.startsWith('/') ? path : BASE + path, init);
  } catch (error) {
    throw new ApiError(0, `the daemon does not answer (${error.message})`);
  }
  const type = response.headers.get('Content-Type') || '';
  const data = type.includes('json')
    ? await response.json().catch(() => null)
    : await response.text();
  if (response.status === 401) onUnauthorized();
  if (!response.ok) {
    const message = (data && data.error) || `${response.status} ${response.statusText}`;
    throw new ApiError(response.status, message, data);
  }
  return data;
}

export const get = (path) => call('GET', path);
export const post = (path, body = {}) => call('POST', path, body);

/** Parts of a path, each encoded. */
export const seg = (...parts) => parts.map(encodeURIComponent).join('/');
