// Text for HTML pages, in content and in quoted attributes: the gate's pages, the invitation
// pages and the page `petri login` answers the browser with.

export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}
