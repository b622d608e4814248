// gridgis pages: shared helpers. Loaded before the map's own script.
window.gridgis = window.gridgis || {};
// Text from data (names from boundary files and forms) goes into tooltips as text, not HTML.
window.gridgis.escape = (value) => String(value ?? "").replace(/[&<>"']/g,
  (c) => ({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;"})[c]);

// The command centre's dead letters: messages the dispatcher gave up on, refreshed every
// `everyMs`. The panel says how many there are and shows the newest with their reasons.
window.gridgis.watchDeadLetters = (panel, url, everyMs = 30000) => {
  const esc = window.gridgis.escape;
  const channels = {feed: "站内", sms: "短信", email: "邮件", webhook: "接口",
                    wecom: "企业微信", dingtalk: "钉钉"};
  const show = (letters) => {
    panel.dataset.count = String(letters.length);
    panel.classList.toggle("gridgis-alarm", letters.length > 0);
    const rows = letters.slice(0, 5).map((d) =>
      `<li>${esc(d.grid)} · ${esc(channels[d.channel] || d.channel)} · `
      + `${esc(d.recipient || "群")}：${esc(d.last_error)}</li>`).join("");
    panel.innerHTML = `<div class="gridgis-title">未送达消息 ${letters.length} 条</div>`
      + (rows ? `<ul>${rows}</ul>` : "<div>全部送达或在途</div>");
  };
  const load = () => fetch(url, {credentials: "same-origin"})
    .then((r) => (r.ok ? r.json() : Promise.reject(r.status)))
    .then(show)
    .catch(() => { panel.dataset.count = "?"; });
  load();
  return setInterval(load, everyMs);
};
