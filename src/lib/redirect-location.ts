// A graduated app's redirect target as the router may write it into its configuration: an
// absolute http(s) URL of URL-safe characters only, so no quote, backslash, dollar (HAProxy
// expands $NAME in double quotes) or space can end or change the directive it is put in.

/** What a redirect target may be once made safe (see redirectLocation). */
export const SAFE_LOCATION = /^https?:\/\/[A-Za-z0-9\-._~:/?#[\]@!&()*+,;=%]{1,2048}$/;
/** What a redirect target may hold as is; anything else in it is %-encoded. */
const SAFE_CHAR = /[A-Za-z0-9\-._~:/?#[\]@!&()*+,;=%]/;

/** The URL parsed and normalized, characters outside SAFE_CHAR %-encoded; undefined when it
 * is not an absolute http(s) URL without credentials, or too long. */
export function redirectLocation(url: string): string | undefined {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return undefined;
  }
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') return undefined;
  if (!parsed.hostname || parsed.username || parsed.password) return undefined;
  // href is ASCII (hosts in punycode, the rest %-encoded): one byte per character.
  const safe = [...parsed.href]
    .map((c) => (SAFE_CHAR.test(c) ? c : `%${c.charCodeAt(0).toString(16).toUpperCase().padStart(2, '0')}`))
    .join('');
  return SAFE_LOCATION.test(safe) ? safe : undefined;
}
