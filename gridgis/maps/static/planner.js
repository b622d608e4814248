// The planner's page: grids and community outlines, a changeset worked from a side panel.
// A polygon drawn with a grid selected replaces its boundary, with none it creates a grid;
// a line splits the selected grid; rename, retire and merge are buttons. Validation
// findings are drawn in red where they are; the impact preview in blue.
window.gridgis = window.gridgis || {};

window.gridgis.plannerPage = (map, drawn, panel, api) => {
  const esc = (v) => window.gridgis.escape(v);
  const w = window.gridgis.t;  // the page's words (gridgis/maps/i18n.py)
  const page = {changeset: null, operations: [], selected: null, merging: null, codes: [],
                loaded: false, findings: 0, map};
  window.gridgis.planner = page;

  const grids = L.geoJSON(null, {
    style: () => ({color: "#555", weight: 1, fillColor: "#4e79a7", fillOpacity: 0.2}),
    onEachFeature: (feature, layer) => {
      layer.bindTooltip(`${esc(feature.properties.code)} ${esc(feature.properties.name)}`,
                        {sticky: true});
      layer.on("click", () => pick(feature.properties.code));
    }}).addTo(map);
  const communities = L.geoJSON(null, {style: {color: "#222", weight: 2, fill: false},
                                       interactive: false}).addTo(map);
  const findings = L.geoJSON(null, {
    style: {color: "#c0392b", weight: 3, fillColor: "#c0392b", fillOpacity: 0.45},
    pointToLayer: (f, latlng) => L.circleMarker(latlng, {radius: 9, color: "#c0392b"}),
    onEachFeature: (f, layer) => layer.bindTooltip(esc(f.properties.message))}).addTo(map);
  const preview = L.geoJSON(null, {
    style: (f) => (f.geometry.type === "Point"
      ? {color: "#e67e22", weight: 1, fillOpacity: 0.8}
      : {color: "#2980b9", weight: 2, dashArray: "6 4", fill: false}),
    pointToLayer: (f, latlng) => L.circleMarker(latlng, {radius: 3, color: "#e67e22"}),
    interactive: false}).addTo(map);

  const send = async (method, url, body) => {
    const answer = await fetch(url, {method, credentials: "same-origin",
      headers: {"Content-Type": "application/json", "X-Requested-With": "gridgis"},
      body: body === undefined ? undefined : JSON.stringify(body)});
    let data = {};
    try { data = await answer.json(); } catch (error) { data = {detail: answer.statusText}; }
    return {ok: answer.ok, status: answer.status, data};
  };
  const say = (text, kind = "") => {
    const box = panel.querySelector(".gridgis-msg");
    if (box) { box.textContent = text; box.className = `gridgis-msg ${kind}`; }
  };

  const loadGrids = async () => {
    const [g, c] = await Promise.all([
      send("GET", `${api}/grids?limit=5000`),
      send("GET", `${api}/admin-units?level=community&limit=5000`)]);
    grids.clearLayers();
    grids.addData(g.data);
    communities.clearLayers();
    communities.addData(c.data);
    page.codes = g.data.features.map((f) => f.properties.code);
    page.versions = new Map(g.data.features.map((f) => [f.properties.code, f.properties.version]));
    if (!page.loaded && grids.getBounds().isValid()) map.fitBounds(grids.getBounds());
    page.loaded = true;
    render();
  };

  // The next free codes of a community: its last grid's sequence plus one, two...
  const nextCodes = (code, n) => {
    const prefix = code.slice(0, 12);
    const last = Math.max(0, ...page.codes.filter((c) => c.startsWith(prefix))
      .map((c) => Number(c.slice(12))));
    return Array.from({length: n}, (_, i) => prefix + String(last + i + 1).padStart(3, "0"));
  };

  const showFindings = (list) => {
    findings.clearLayers();
    const located = (list || []).filter((f) => f.geometry);
    located.forEach((f) => findings.addData({type: "Feature", geometry: f.geometry,
                                             properties: {message: `${f.grid} ${f.message}`}}));
    page.findings = located.length;
    panel.querySelector(".gridgis-findings").innerHTML = (list || []).map((f) =>
      `<li class="gridgis-${f.severity === "error" ? "warn" : "ok"}">${esc(f.grid)} · `
      + `${esc(f.check)}：${esc(f.message)}</li>`).join("");
  };

  const render = () => {
    const c = page.changeset;
    const selected = page.selected ? `${esc(w.p_selected)} <b>${esc(page.selected)}</b>`
      : esc(w.p_none_selected);
    panel.innerHTML = `<div class="gridgis-title">${esc(w.p_title)}</div>
      ${c ? `<div>${esc(w.p_changeset)} #${c.id}: ${esc(c.reason)}
               <button type="button" data-do="abandon">${esc(w.p_abandon)}</button></div>`
        : `<input class="gridgis-reason" placeholder="${esc(w.p_reason)}" maxlength="1000">
           <button type="button" data-do="open">${esc(w.p_open)}</button>`}
      <div class="gridgis-selected">${selected}
        ${page.merging ? `(${esc(w.p_merge_into)} ${esc(page.merging)})` : ""}</div>
      ${c && page.selected ? `<button type="button" data-do="rename">${esc(w.p_rename)}</button>
        <button type="button" data-do="merge">${esc(w.p_merge)}</button>
        <button type="button" data-do="retire">${esc(w.p_retire)}</button>` : ""}
      <p class="gridgis-hint">${esc(w.p_hint)}</p>
      <ol class="gridgis-ops">${page.operations.map((o) =>
        `<li>${esc(o.op)} ${esc(o.grid)}</li>`).join("")}</ol>
      ${c ? `<button type="button" data-do="validate">${esc(w.p_validate)}</button>
        <button type="button" data-do="preview">${esc(w.p_preview)}</button>
        <button type="button" data-do="publish">${esc(w.p_publish)}</button>` : ""}
      <ul class="gridgis-findings"></ul>
      <div class="gridgis-impact"></div>
      <div class="gridgis-msg" role="status"></div>`;
  };

  // Every operation on a live grid carries the version the page drew it from: a grid
  // republished meanwhile is refused (409), never overwritten.
  const addOperation = async (body) => {
    if (!page.changeset) { say(w.p_open_first, "gridgis-warn"); return false; }
    if (page.versions?.has(body.grid) && body.op !== "create") {
      body.base_version = page.versions.get(body.grid);
    }
    const r = await send("POST", `${api}/changesets/${page.changeset.id}/operations`, body);
    if (!r.ok) {
      render();
      showFindings(r.data.findings);
      say(`${w.p_not_added}${r.data.detail || r.status}`, "gridgis-warn");
      return false;
    }
    page.operations.push(r.data);
    render();
    say(`${w.p_added}${body.op} ${body.grid}`, "gridgis-ok");
    return true;
  };

  const pick = (code) => {
    if (page.merging && page.merging !== code) {
      const into = page.merging;
      page.merging = null;
      addOperation({op: "merge", grid: into, with: [code]});
      return;
    }
    page.selected = code;
    grids.setStyle((f) => ({color: f.properties.code === code ? "#e67e22" : "#555",
                            weight: f.properties.code === code ? 3 : 1}));
    render();
  };

  const actions = {
    open: async () => {
      const reason = panel.querySelector(".gridgis-reason").value.trim();
      const r = await send("POST", `${api}/changesets`, {reason});
      if (!r.ok) { say(`${w.p_not_opened}${r.data.detail || r.status}`, "gridgis-warn"); return; }
      page.changeset = r.data;
      page.operations = [];
      findings.clearLayers();
      preview.clearLayers();
      render();
      say(`${w.p_changeset} #${r.data.id} ${w.p_opened}`, "gridgis-ok");
    },
    abandon: async () => {  // kept as a record, never published; the panel starts afresh
      await send("POST", `${api}/changesets/${page.changeset.id}/abandon`);
      page.changeset = null;
      page.operations = [];
      findings.clearLayers();
      preview.clearLayers();
      render();
    },
    rename: () => {
      const name = window.prompt(w.p_new_name);
      if (name) addOperation({op: "modify", grid: page.selected, name});
    },
    retire: () => addOperation({op: "retire", grid: page.selected}),
    merge: () => { page.merging = page.selected; render(); },
    validate: async () => {
      const r = await send("POST", `${api}/changesets/${page.changeset.id}/validate`);
      if (!r.ok) { say(`${w.p_validate_failed}${r.data.detail || r.status}`, "gridgis-warn"); return; }
      showFindings(r.data.findings);
      say(r.data.ok ? w.p_valid : w.p_invalid, r.data.ok ? "gridgis-ok" : "gridgis-warn");
    },
    preview: async () => {
      const r = await send("GET", `${api}/changesets/${page.changeset.id}/preview`);
      if (!r.ok) { say(`${w.p_preview_failed}${r.data.detail || r.status}`, "gridgis-warn"); return; }
      preview.clearLayers();
      preview.addData(r.data.map);
      const t = r.data.totals;
      panel.querySelector(".gridgis-impact").innerHTML =
        `<div>${esc(w.p_moves)} ${esc(w.p_buildings)} <b>${t.buildings}</b> · `
        + `${esc(w.p_residents)} <b>${t.residents}</b> · ${esc(w.p_households)} `
        + `<b>${t.households}</b> · ${esc(w.p_alerts)} <b>${t.alerts}</b></div>`
        + `<ul>${r.data.moves.map((m) => `<li>${esc(m.from_grid)} → `
          + `${esc(m.to_grid || w.p_no_grid)}: ${m.buildings} ${esc(w.p_buildings_unit)} `
          + `${m.residents} ${esc(w.p_people)}</li>`).join("")}</ul>`
        + `<ul>${r.data.heads.map((h) => `<li>${esc(h.user)} ${h.residents > 0 ? "+" : ""}`
          + `${h.residents} ${esc(w.p_people)}</li>`).join("")}</ul>`;
      say(w.p_previewed, "gridgis-ok");
    },
    publish: async () => {
      const r = await send("POST", `${api}/changesets/${page.changeset.id}/publish`);
      if (!r.ok) {
        showFindings(r.data.findings);
        say(`${w.p_not_published}${r.data.detail || r.status}`, "gridgis-warn");
        return;
      }
      page.changeset = null;
      page.operations = [];
      page.selected = null;
      preview.clearLayers();
      findings.clearLayers();
      await loadGrids();
      say(`${w.p_published}${Object.keys(r.data.grids).join(", ")}`, "gridgis-ok");
    },
  };

  panel.addEventListener("click", (event) => {
    const button = event.target.closest("button[data-do]");
    if (button) actions[button.dataset.do]();
  });
  L.DomEvent.disableClickPropagation(panel);
  L.DomEvent.disableScrollPropagation(panel);

  map.on(L.Draw.Event.CREATED, async (event) => {
    const geometry = event.layer.toGeoJSON().geometry;
    setTimeout(() => drawn.removeLayer(event.layer), 0);  // the operation is what stays
    if (event.layerType === "polyline") {
      if (!page.selected) { say(w.p_select_first, "gridgis-warn"); return; }
      const typed = window.prompt(w.p_split_codes,
                                  nextCodes(page.selected, 2).join(","));
      if (!typed) return;
      const codes = typed.split(",").map((c) => c.trim()).filter(Boolean);
      await addOperation({op: "split", grid: page.selected, geometry, codes});
    } else if (page.selected) {
      await addOperation({op: "modify", grid: page.selected, geometry});
    } else {
      const code = window.prompt(w.p_new_code);
      if (!code) return;
      const name = window.prompt(w.p_new_grid_name) || code;
      const heads = (window.prompt(w.p_heads) || "")
        .split(",").map((h) => h.trim()).filter(Boolean);
      await addOperation({op: "create", grid: code.trim(), name, geometry, heads});
    }
  });

  render();
  loadGrids();
};
