/*
 * pqrelay browser client (placeholder).
 *
 * The real client (X-Wing pairing and STREAM-encoded requests) is not bundled yet.
 * Until then this module only performs discovery, so a page can check that the relay is
 * reachable and learn its capabilities.
 */
export const PLACEHOLDER = true;

export async function discover(relayUrl) {
  const res = await fetch(new URL("/api/mte-relay", relayUrl), {
    method: "HEAD",
    credentials: "include",
  });
  if (!res.ok) throw new Error(`relay discovery failed: ${res.status}`);
  return {
    relay: res.headers.get("x-mte-relay"),
    info: res.headers.get("x-mte-relay-info"),
  };
}
