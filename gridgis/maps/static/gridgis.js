// gridgis pages: shared helpers. Loaded before the map's own script.
window.gridgis = window.gridgis || {};
// Text from data (names from boundary files and forms) goes into tooltips as text, not HTML.
window.gridgis.escape = (value) => String(value ?? "").replace(/[&<>"']/g,
  (c) => ({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;"})[c]);
