// The "browser" `petri login` opens in the tests ($BROWSER): signs in at the test provider as
// the login given, follows the provider's redirect to the CLI's loopback listener, and writes
// the page the listener answered to a file (what a person would read in the tab).
//   node --import tsx test/identity/browser.ts LOGIN PAGE_FILE URL
import { writeFileSync } from 'node:fs';
import { TestBrowser } from './oidc-provider.js';

const [login, pageFile, url] = process.argv.slice(2);
try {
  if (!login || !pageFile || !url) throw new Error('usage: browser.ts LOGIN PAGE_FILE URL');
  const end = await new TestBrowser(login).run(url, (u) => u.pathname === '/callback');
  if (!end.url) throw new Error(`the provider did not redirect back: ${end.page?.slice(0, 300)}`);
  const res = await fetch(end.url);
  writeFileSync(pageFile, `${res.status}\n${await res.text()}`);
} catch (err) {
  if (pageFile) writeFileSync(pageFile, `error\n${err instanceof Error ? err.stack : String(err)}`);
  process.exitCode = 1;
}
