// The command centre's live map: grids coloured by the view the operator picks, the active
// warnings' wind circles and areas, the territory's figures. The state comes from
// /api/map/state when the page opens and again whenever the live feed (SSE) reports a
// change; only the grids whose colour moved are redrawn.
window.gridgis = window.gridgis || {};

(() => {
  const COMMUNITY = ["#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948",
                     "#b07aa1", "#ff9da7", "#9c755f", "#86bcb6", "#d37295", "#a0cbe8"];
  const NONE = "#dfe6e9";
  const TIERS = {hurricane: "#7b0000", storm: "#c0392b", gale: "#e67e22", area: "#f1c40f"};
  // Each view: the colour of a grid, and its legend (colour, word key).
  const VIEWS = {
    community: {
      colour: (code, p) => {
        let h = 0;
        for (const c of p.community_code || "") h = (h * 31 + c.charCodeAt(0)) >>> 0;
        return COMMUNITY[h % COMMUNITY.length];
      },
      legend: []},
    tier: {colour: (code, p, s) => (s ? TIERS[s.tier] || TIERS.area : NONE),
           legend: [[TIERS.hurricane, "tier_hurricane"], [TIERS.storm, "tier_storm"],
                    [TIERS.gale, "tier_gale"], [TIERS.area, "tier_area"], [NONE, "no_alert"]]},
    ack: {colour: (code, p, s) => (!s ? NONE : s.acknowledged ? "#27ae60"
                                   : s.escalation > 0 ? "#8e44ad" : "#e74c3c"),
          legend: [["#27ae60", "ack_yes"], ["#e74c3c", "ack_no"], ["#8e44ad", "ack_escalated"],
                   [NONE, "no_alert"]]},
    progress: {
      colour: (code, p, s) => {
        if (!s || !s.items) return NONE;
        const share = s.finished / s.items;
        return share >= 1 ? "#27ae60" : share >= 0.5 ? "#f1c40f" : "#e74c3c";
      },
      legend: [["#27ae60", "progress_done"], ["#f1c40f", "progress_half"],
               ["#e74c3c", "progress_low"], [NONE, "no_alert"]]},
    risk: {colour: (code, p, s) => (!s ? NONE : s.at_risk ? "#c0392b" : "#27ae60"),
           legend: [["#c0392b", "risk_yes"], ["#27ae60", "risk_no"], [NONE, "no_alert"]]},
    vulnerable: {
      colour: (code, p, s, v) => (!v ? NONE : v <= 5 ? "#d7b5d8" : v <= 20 ? "#c51b8a"
                                  : "#7a0177"),
      legend: [["#d7b5d8", "vulnerable_some"], ["#c51b8a", "vulnerable_many"],
               ["#7a0177", "vulnerable_most"], [NONE, "vulnerable_none"]]},
  };

  const page = {view: "tier", state: {grids: {}, vulnerable: {}, totals: {}, areas: null},
                refreshes: 0, redrawn: 0, drawnColour: new Map(), props: new Map(),
                live: false};
  window.gridgis.command = page;

  // The style of one grid feature under the current view (the grids layer calls this).
  window.gridgis.gridStyle = (feature) => {
    const p = feature.properties;
    page.props.set(p.code, p);
    const s = page.state.grids[p.code];
    const fill = VIEWS[page.view].colour(p.code, p, s, page.state.vulnerable[p.code]);
    page.drawnColour.set(p.code, fill);
    return {color: s ? "#333" : "#777", weight: s ? 1.2 : 0.6, fill: true, fillColor: fill,
            fillOpacity: page.view === "community" ? 0.45 : s ? 0.7 : 0.35};
  };
  page.colourOf = (code) => page.drawnColour.get(code);

  window.gridgis.gridPopup = (feature) => {
    const esc = window.gridgis.escape;
    const t = window.gridgis.t;
    const p = feature.properties;
    const s = page.state.grids[p.code];
    const rows = [`<b>${esc(p.code)}</b> ${esc(p.name)}`,
                  `${esc(p.community_name)} · ${esc(p.households)} ${esc(t.households)}`];
    if (s) {
      rows.push(`${esc(t.level)}：${esc(s.level)} · ${esc(t[`tier_${s.tier}`] || s.tier)}`);
      rows.push(`${esc(s.acknowledged ? t.ack_yes : t.ack_no)}`
                + `${s.escalation ? ` · ${esc(t.ack_escalated)} ${s.escalation}` : ""}`);
      rows.push(`${esc(t.items)}：${s.finished}/${s.items}${s.at_risk ? ` · ${esc(t.risk_yes)}` : ""}`);
    }
    const vulnerable = page.state.vulnerable[p.code];
    if (vulnerable) rows.push(`${esc(t.view_vulnerable)}：${vulnerable} ${esc(t.people)}`);
    rows.push(`<a href="/map/grid/${encodeURIComponent(p.code)}">${esc(t.open_grid)}</a>`
              + (s ? ` · <a href="/reports/${encodeURIComponent(s.warning)}">${esc(t.report)}</a>`
                 : ""));
    return rows.join("<br>");
  };

  window.gridgis.commandPage = (map, panel, api) => {
    const esc = window.gridgis.escape;
    const t = window.gridgis.t;
    const grids = () => window.gridgis.layers.grids;
    const hazard = L.geoJSON(null, {
      style: (f) => ({color: TIERS[f.properties.tier] || TIERS.area, weight: 2,
                      fillOpacity: 0.08, dashArray: f.properties.valid_at ? "4 4" : null}),
      onEachFeature: (f, layer) => layer.bindTooltip(
        `${esc(f.properties.warning)} · ${esc(t[`tier_${f.properties.tier}`] || f.properties.tier)}`),
      interactive: true}).addTo(map);
    window.gridgis.layers.hazard = hazard;
    const track = L.geoJSON(null, {style: {color: "#2c3e50", weight: 2, dashArray: "2 6"},
                                   interactive: false}).addTo(map);

    const legend = () => VIEWS[page.view].legend.map(([colour, key]) =>
      `<div><i style="background:${colour};border-radius:2px"></i>${esc(t[key])}</div>`).join("");
    const figures = (n) => [
      ["alerted", n.alerted, t.grids_unit], ["acknowledged", n.acknowledged, t.grids_unit],
      ["worked_through", n.worked_through, t.grids_unit], ["at_risk", n.at_risk, t.grids_unit],
      ["checked_in", n.checked_in, t.people], ["shelter_room", n.shelter_room, t.people],
      ...(n.dead_letters == null ? [] : [["waiting_messages", n.waiting_messages, ""],
                                         ["dead_letters", n.dead_letters, ""]])]
      .map(([key, value, unit]) => `<div class="gridgis-figure" data-key="${key}">`
           + `${esc(t[key])} <b>${esc(value ?? 0)}</b> ${esc(unit)}</div>`).join("");
    const render = () => {
      panel.innerHTML = `<div class="gridgis-title">${esc(t.view)}</div>
        <select class="gridgis-view">${Object.keys(VIEWS).map((v) =>
          `<option value="${v}"${v === page.view ? " selected" : ""}>${esc(t[`view_${v}`])}`
          + "</option>").join("")}</select>
        <div class="gridgis-legend-rows">${legend()}</div>
        <div class="gridgis-title">${esc(t.figures)}
          <span class="gridgis-live" data-live="${page.live}">
            ${esc(page.live ? t.live : t.offline)}</span></div>
        ${figures(page.state.totals || {})}`;
    };
    panel.addEventListener("change", (event) => {
      if (!event.target.matches(".gridgis-view")) return;
      page.view = event.target.value;
      restyle(true);
      render();
    });
    L.DomEvent.disableClickPropagation(panel);

    // Redraw the grids whose colour changed (all of them when the view changed).
    const restyle = (all) => {
      const layer = grids();
      if (!layer) return;
      if (layer.setFeatureStyle) {  // vector tiles: by grid code, the tiles drawn so far
        for (const [code, properties] of page.props) {
          const before = page.drawnColour.get(code);
          const style = window.gridgis.gridStyle({properties});
          if (all || style.fillColor !== before) {
            layer.setFeatureStyle(code, style);
            page.redrawn += 1;
          }
        }
        return;
      }
      // leaflet-realtime keeps its features by id and their shapes behind getLayer
      for (const [id, feature] of Object.entries(layer._features)) {
        const before = page.drawnColour.get(feature.properties.code);
        const style = window.gridgis.gridStyle(feature);
        if (all || style.fillColor !== before) {
          layer.getLayer(id)?.setStyle(style);
          page.redrawn += 1;
        }
      }
    };

    let pending = null;
    const refresh = async () => {
      pending = null;
      const answer = await fetch(`${api}/map/state`, {credentials: "same-origin"});
      if (!answer.ok) return;
      page.state = await answer.json();
      page.refreshes += 1;
      hazard.clearLayers();
      hazard.addData(page.state.areas);
      track.clearLayers();
      track.addData(page.state.track);
      restyle(false);
      render();
    };
    const soon = () => { if (!pending) pending = setTimeout(refresh, 300); };

    const feed = new EventSource(`${api}/feed`);
    feed.onopen = () => { page.live = true; soon(); };
    feed.onmessage = soon;
    feed.onerror = () => { page.live = false; render(); };
    grids()?.on("update", () => restyle(false));  // the grids layer reloaded its features
    if (grids()?.setFeatureStyle) {  // vector tiles: the popup from the clicked feature
      grids().on("click", (e) => L.popup().setLatLng(e.latlng)
        .setContent(window.gridgis.gridPopup({properties: e.layer.properties})).openOn(map));
    }
    // Names of communities from zoom 12: below it they would cover the map.
    const labels = () => map.getContainer().classList.toggle("gridgis-far", map.getZoom() < 12);
    map.on("zoomend", labels);
    labels();
    render();
    refresh();
    setInterval(refresh, 60000);  // and a slow beat, in case a change came while offline
  };
})();
