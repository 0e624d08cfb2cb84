// The config vars an add-on owns. Apart from its URL, a Redis add-on tells the app the key
// prefix its login is confined to (REDIS_KEY_PREFIX): keys outside it are refused.

export function addonVarNames(addon: { type: string; env_var: string }): string[] {
  return addon.type === 'redis' ? [addon.env_var, keyPrefixVar(addon.env_var)] : [addon.env_var];
}

/** REDIS_URL → REDIS_KEY_PREFIX, CACHE_URL → CACHE_KEY_PREFIX. */
export function keyPrefixVar(envVar: string): string {
  return `${envVar.replace(/_URL$/, '')}_KEY_PREFIX`;
}
