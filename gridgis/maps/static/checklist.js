// The grid head's checklist page: the open checklist of the head's grid, its items on the
// map and in a list, most urgent first, each worked in a tap or two. Every change is a PATCH
// carrying the version read (If-Match); a stale one shows the item as it now is.
window.gridgis = window.gridgis || {};

window.gridgis.checklistPage = (map, root, api, grid = null, refreshMs = 30000) => {
  const esc = (v) => window.gridgis.escape(v);
  const t = window.gridgis.t;  // the page's words (gridgis/maps/i18n.py)
  // fill("key", {n: 3}): the sentence with its {n} filled in
  const fill = (key, values = {}) => t[key].replace(/\{(\w+)\}/g, (_, name) => values[name]);
  const KINDS = {contact: t.c_contact, transfer: t.c_transfer, inspect: t.c_inspect,
                 open_shelter: t.c_open_shelter, staff_station: t.c_staff_station};
  const STATES = {pending: t.c_pending, in_progress: t.c_in_progress, done: t.c_done,
                  unable: t.c_unable, not_needed: t.c_not_needed};
  const STAGES = {to_transfer: t.c_to_transfer, left_home: t.c_left_home,
                  checked_in: t.c_checked_in, checked_out: t.c_checked_out};
  const COLOURS = {pending: "#c0392b", in_progress: "#e67e22", done: "#27ae60",
                   unable: "#555", not_needed: "#95a5a6"};
  const NEEDS = {wheelchair: t.c_wheelchair, medical: t.c_medical};
  const OPEN = ["pending", "in_progress"];
  const outline = L.geoJSON(null, {style: {color: "#2c3e50", weight: 2, fill: false},
                                   interactive: false}).addTo(map);
  const markers = L.layerGroup().addTo(map);
  const page = {checklist: null, items: new Map(), markers: new Map(), people: new Map(),
                households: new Map(), hideDone: false};

  const getJSON = (url) => fetch(url, {credentials: "same-origin"}).then((r) => r.json()
    .then((body) => (r.ok ? body : Promise.reject(new Error(body.detail || r.status)))));
  const patch = (item, body) => fetch(`${api}/checklists/items/${item.id}`, {
    method: "PATCH", credentials: "same-origin", body: JSON.stringify(body),
    headers: {"Content-Type": "application/json", "X-Requested-With": "gridgis",
              "If-Match": `"${item.version}"`}});

  // What a worker can do with an item now: a label and the change, and whether it asks for
  // a reason, takes the head-count, picks a shelter or writes a note.
  const actions = (item) => {
    if (page.checklist.state !== "open") return [];
    const note = {label: t.c_note, note: true};
    if (item.kind === "transfer") {
      const move = {label: t.c_change_shelter, pick: true};
      if (item.stage === "to_transfer" && OPEN.includes(item.state)) {
        return [{label: t.c_left_home, change: {stage: "left_home"}, count: true}, move,
                {label: t.c_no_move, change: {state: "not_needed"}},
                {label: t.c_cannot_move, change: {state: "unable"}, reason: true}, note];
      }
      if (item.stage === "left_home") {
        return [{label: t.c_checked_in, change: {stage: "checked_in"}}, move, note];
      }
      if (item.stage === "checked_in") {
        return [{label: t.c_checked_out, change: {stage: "checked_out"}}, note];
      }
      return [note];
    }
    if (!OPEN.includes(item.state)) return [note];
    const done = {contact: t.c_called, inspect: t.c_inspected, open_shelter: t.c_opened,
                  staff_station: t.c_on_duty}[item.kind];
    const unable = item.kind === "contact" ? t.c_unreachable : t.c_unable;
    return [{label: done, change: {state: "done"}},
            {label: unable, change: {state: "unable"}, reason: true}, note];
  };

  // Shelters with room for a household, nearest first (great-circle metres from its home).
  const metres = (a, b) => {
    const rad = Math.PI / 180;
    const dLat = (b[1] - a[1]) * rad;
    const dLon = (b[0] - a[0]) * rad;
    const h = Math.sin(dLat / 2) ** 2
      + Math.cos(a[1] * rad) * Math.cos(b[1] * rad) * Math.sin(dLon / 2) ** 2;
    return 2 * 6371008.8 * Math.asin(Math.sqrt(h));
  };
  const sheltersFor = async (item) => {
    const shelters = await getJSON(`${api}/shelters?limit=5000`);  // their room now
    const home = [item.lon, item.lat];
    return shelters.features
      .filter(({properties: s}) => s.code !== item.shelter
        && s.capacity - s.occupancy >= item.people
        && (!item.needs.includes("wheelchair") || s.wheelchair_access)
        && (!item.needs.includes("medical") || s.medical))
      .map((f) => ({...f.properties, metres: metres(home, f.geometry.coordinates)}))
      .sort((a, b) => a.metres - b.metres)
      .slice(0, 8);
  };
  const pickShelter = async (item) => {
    const box = document.querySelector(`#item-${item.id} .gridgis-pick`);
    const choices = await sheltersFor(item);
    if (!choices.length) { say(item.id, t.c_no_room_near, "gridgis-warn"); return; }
    box.innerHTML = `<select><option value="">${esc(t.c_choose_shelter)}</option>${choices.map(
      (s) => `<option value="${esc(s.code)}">${esc(s.name)} · `
        + `${esc(fill("c_room", {n: s.capacity - s.occupancy}))}`
        + ` · ${esc(fill("c_metres", {n: Math.round(s.metres)}))}</option>`).join("")}</select>`;
    box.querySelector("select").addEventListener("change", (event) => {
      if (event.target.value) save(item, {shelter: event.target.value}, t.c_change_shelter);
    });
  };

  const subject = (item) => {
    if (item.kind === "contact") {
      const person = page.people.get(item.resident);
      const phone = person?.phone ? ` <a href="tel:${esc(person.phone)}">${esc(person.phone)}</a>`
        : "";
      return `${esc(person?.name || item.resident)}${phone}`;
    }
    if (item.kind === "transfer") {
      const names = page.households.get(item.household) || [];
      const needs = item.needs.map((n) => NEEDS[n] || n).join("、");
      const to = item.shelter
        ? `→ ${esc(item.shelter)}${item.distance_m != null
          ? ` (${esc(fill("c_metres", {n: Math.round(item.distance_m)}))})` : ""}`
        : `<span class="gridgis-warn">${esc(t.c_no_shelter)}</span>`;
      return `${esc(item.household)} · ${item.people}/${item.household_size} ${esc(t.c_people)}`
        + (names.length ? ` · ${esc(names.join("、"))}` : "")
        + (needs ? ` · <b>${esc(needs)}</b>` : "") + `<br>${to}`;
    }
    return esc(item.building || item.shelter || item.station || "");
  };

  // Who changed the item last, when, and their note.
  const byline = (item) => {
    if (!item.updated_by) return "";
    const at = new Date(item.updated_at).toLocaleTimeString("zh-CN",
                                                            {hour: "2-digit", minute: "2-digit"});
    return `<div class="gridgis-by">${esc(item.updated_by)} · ${esc(at)}`
      + `${item.note ? ` · ${esc(item.note)}` : ""}</div>`;
  };

  const card = (item) => {
    const status = item.kind === "transfer" && item.state !== "not_needed"
      && item.state !== "unable" ? STAGES[item.stage] : STATES[item.state];
    const buttons = actions(item).map(({label}, i) =>
      `<button type="button" data-action="${i}">${esc(label)}</button>`).join("");
    const count = actions(item).some((a) => a.count)
      ? `<label>${esc(t.c_head_count)} <input type="number" min="0" max="${item.household_size}"
           value="${item.head_count ?? item.people}" inputmode="numeric"></label>` : "";
    return `<article class="gridgis-item" id="item-${item.id}" data-id="${item.id}"
        data-state="${esc(item.state)}" data-stage="${esc(item.stage || "")}">
      <header><span class="gridgis-kind">${esc(KINDS[item.kind] || item.kind)}</span>
        <span class="gridgis-state" style="color:${COLOURS[item.state]}">${esc(status)}</span></header>
      <div class="gridgis-subject">${subject(item)}</div>
      ${item.reason ? `<div class="gridgis-reason">${esc(t.c_reason)}${esc(item.reason)}</div>` : ""}
      <div class="gridgis-actions">${count}${buttons}</div>
      <div class="gridgis-pick"></div>
      ${byline(item)}
      <div class="gridgis-msg" role="status"></div>
    </article>`;
  };

  const header = () => {
    const items = [...page.items.values()];
    const finished = items.filter((i) => ["done", "not_needed"].includes(i.state)).length;
    const c = page.checklist;
    const due = c.due_at ? new Date(c.due_at) : null;
    const left = due ? Math.round((due - Date.now()) / 60000) : null;
    const dueText = due ? `${due.toLocaleTimeString("zh-CN", {hour: "2-digit", minute: "2-digit"})}`
      + (left >= 0 ? fill("c_minutes_left", {n: left}) : t.c_overdue) : t.c_no_due;
    return `<section class="gridgis-head" data-at-risk="${c.at_risk}">
      <h1>${esc(c.grid)} ${esc(t.c_checklist)}</h1>
      <div>${esc(t.c_done)} <b class="gridgis-done">${finished}</b> / ${items.length}
        · ${esc(t.c_due)} ${esc(dueText)}</div>
      <progress max="${items.length}" value="${finished}"></progress>
      <label><input type="checkbox" class="gridgis-hide" ${page.hideDone ? "checked" : ""}>
        ${esc(t.c_only_open)}</label>
      ${c.at_risk ? `<div class="gridgis-warn">${esc(t.c_at_risk)}</div>` : ""}
      ${c.unplaced ? `<div class="gridgis-warn">${esc(fill("c_unplaced", {n: c.unplaced}))}</div>`
        : ""}
      ${c.ready ? "" : `<div class="gridgis-warn">${esc(t.c_making)}</div>`}
      ${c.state !== "open" ? `<div class="gridgis-warn">${esc(c.state === "stood_down"
        ? t.c_stood_down : t.c_closed)}</div>` : ""}
    </section>`;
  };

  const mark = (item) => {
    page.markers.get(item.id)?.remove();
    if (item.lat == null || item.lon == null) return;
    const marker = L.circleMarker([item.lat, item.lon], {
      radius: 8, color: "#fff", weight: 2, fillColor: COLOURS[item.state], fillOpacity: 0.9});
    marker.bindTooltip(`${esc(KINDS[item.kind])} · ${esc(item.resident || item.household
      || item.building || item.shelter || item.station)}`);
    marker.on("click", () => {
      const element = document.getElementById(`item-${item.id}`);
      element?.scrollIntoView({behavior: "smooth", block: "center"});
      element?.classList.add("gridgis-picked");
      setTimeout(() => element?.classList.remove("gridgis-picked"), 1500);
    });
    marker.addTo(markers);
    page.markers.set(item.id, marker);
  };

  const say = (id, text, kind = "") => {
    const box = document.querySelector(`#item-${id} .gridgis-msg`);
    if (box) { box.textContent = text; box.className = `gridgis-msg ${kind}`; }
  };

  const show = (item, message, kind) => {
    page.items.set(item.id, item);
    const element = document.getElementById(`item-${item.id}`);
    if (element) element.outerHTML = card(item);
    mark(item);
    root.querySelector(".gridgis-head").outerHTML = header();
    if (message) say(item.id, message, kind);
  };

  const save = async (item, body, label) => {
    say(item.id, t.c_saving);
    try {
      const answer = await patch(item, body);
      const result = await answer.json();
      if (answer.ok) show(result, `${t.c_saved}${label}`, "gridgis-ok");
      else if (answer.status === 412 && result.current) {
        show(result.current, t.c_stale, "gridgis-warn");
      } else say(item.id, `${t.c_not_saved}${result.detail || answer.status}`, "gridgis-warn");
    } catch (error) {
      say(item.id, `${t.c_not_saved_network}${error.message}`, "gridgis-warn");
    }
  };

  const act = async (item, index) => {
    const action = actions(item)[index];
    if (action.pick) { await pickShelter(item); return; }
    const body = {...action.change};
    if (action.reason || action.note) {
      const text = window.prompt(action.note ? t.c_note : `${action.label}: ${t.c_why}`,
                                 action.note ? item.note || "" : "");
      if (!text) return;
      body[action.note ? "note" : "reason"] = text;
    }
    if (action.count) {
      const typed = document.querySelector(`#item-${item.id} input`).value.trim();
      const count = Number(typed);
      if (typed === "" || !Number.isInteger(count) || count < 0 || count > item.household_size) {
        say(item.id, fill("c_count_range", {n: item.household_size}), "gridgis-warn");
        return;
      }
      body.head_count = count;
    }
    await save(item, body, action.label);
  };

  root.addEventListener("click", (event) => {
    const button = event.target.closest("button[data-action]");
    if (button) {
      const id = Number(button.closest(".gridgis-item").dataset.id);
      act(page.items.get(id), Number(button.dataset.action));
      return;
    }
    const heading = event.target.closest(".gridgis-item header");
    if (heading) {  // the item on the map
      const marker = page.markers.get(Number(heading.parentElement.dataset.id));
      if (marker) {
        map.setView(marker.getLatLng(), Math.max(map.getZoom(), 17));
        marker.openTooltip();
        window.scrollTo({top: 0, behavior: "smooth"});
      }
      return;
    }
    const chosen = event.target.closest("[data-checklist]");
    if (chosen) window.location.hash = `checklist=${chosen.dataset.checklist}`;
  });

  const loadPeople = async (grid) => {
    page.people.clear();
    page.households.clear();
    try {  // names and phones: only a grid's own team gets them (an audited read)
      const people = await getJSON(`${api}/residents?within=${encodeURIComponent(grid)}&limit=5000`);
      for (const {properties: p} of people.features) {
        page.people.set(p.code, p);
        const household = page.households.get(p.household_code) || [];
        household.push(p.name);
        page.households.set(p.household_code, household);
      }
    } catch (error) { /* codes stay shown: the command centre sees no names here */ }
  };

  const open = async (checklist, first) => {
    page.checklist = checklist;
    const items = await getJSON(`${api}/checklists/${checklist.id}/items`);
    if (first) {
      await loadPeople(checklist.grid);
      getJSON(`${api}/grids?within=${encodeURIComponent(checklist.grid)}&limit=10`)
        .then((grids) => {
          outline.clearLayers();
          outline.addData(grids.features.filter((g) => g.properties.code === checklist.grid));
        }).catch(() => {});
    }
    const typing = document.activeElement?.closest?.(".gridgis-item")?.dataset.id;
    const changed = items.length !== page.items.size
      || items.some((i) => page.items.get(i.id)?.version !== i.version);
    if (!first && (!changed || typing)) return;
    page.items = new Map(items.map((i) => [i.id, i]));
    root.innerHTML = header() + items.map(card).join("");
    markers.clearLayers();
    page.markers.clear();
    items.forEach(mark);
    if (first && markers.getLayers().length) {
      map.fitBounds(L.featureGroup(markers.getLayers()).getBounds(), {padding: [20, 20]});
    }
    root.dataset.ready = "true";
  };

  const choose = (lists) => {
    root.innerHTML = `<section class="gridgis-head"><h1>${esc(t.c_choose)}</h1></section>`
      + lists.map((c) => `<button type="button" class="gridgis-choice" data-checklist="${c.id}">
          ${esc(c.grid)} · ${esc(t.c_done)} ${c.finished}/${c.items}${c.at_risk
            ? ` · ${esc(t.c_behind)}` : ""}</button>`)
        .join("");
    root.dataset.ready = "true";
  };

  const load = async (first) => {
    try {
      const only = grid ? `&grid=${encodeURIComponent(grid)}` : "";
      const lists = await getJSON(`${api}/checklists?state=open&limit=200${only}`);
      const picked = lists.find((c) => String(c.id) === wanted())
        || (lists.length === 1 ? lists[0] : null);
      if (picked) await open(picked, first || page.checklist?.id !== picked.id);
      else if (lists.length) choose(lists);
      else {
        root.innerHTML = `<section class="gridgis-head"><h1>${esc(grid || "")} `
          + `${esc(t.c_none)}</h1><p>${esc(t.c_none_yet)}</p></section>`
          + '<div class="gridgis-alert"></div>';
        root.dataset.ready = "true";
      }
      if (grid) await showAlert();
      root.dataset.loads = String(Number(root.dataset.loads || 0) + 1);  // for the curious
    } catch (error) {
      root.innerHTML = `<p class="gridgis-warn">${esc(t.c_load_failed)}${esc(error.message)}</p>`;
    }
  };
  const wanted = () => (window.location.hash.match(/checklist=(\d+)/) || [])[1];

  // The grid's own page: its outline, buildings and nearest shelters on the map, and its
  // active alert with a button to acknowledge it.
  const context = L.layerGroup().addTo(map);
  const showGrid = async () => {
    const [grids, buildings, shelters] = await Promise.all([
      getJSON(`${api}/grids?within=${encodeURIComponent(grid)}&limit=10`),
      getJSON(`${api}/buildings?within=${encodeURIComponent(grid)}&limit=5000`),
      getJSON(`${api}/shelters?limit=5000`)]);
    const own = grids.features.filter((g) => g.properties.code === grid);
    outline.clearLayers();
    outline.addData(own);
    L.geoJSON(buildings, {pointToLayer: (f, latlng) => L.circleMarker(latlng, {
      radius: 3, color: "#7f8c8d", weight: 1, fillOpacity: 0.6}), interactive: false})
      .addTo(context);
    const bounds = outline.getBounds();
    if (!bounds.isValid()) return;
    const centre = bounds.getCenter();
    shelters.features
      .map((f) => ({f, m: metres([centre.lng, centre.lat], f.geometry.coordinates)}))
      .sort((a, b) => a.m - b.m).slice(0, 5)
      .forEach(({f}) => L.circleMarker([f.geometry.coordinates[1], f.geometry.coordinates[0]], {
        radius: 7, color: "#fff", weight: 2, fillColor: "#16a085", fillOpacity: 0.95})
        .bindTooltip(`${esc(f.properties.name)} ${esc(f.properties.occupancy)}/`
                     + `${esc(f.properties.capacity)}`).addTo(context));
    if (!markers.getLayers().length) map.fitBounds(bounds, {padding: [10, 10]});
  };
  const showAlert = async () => {
    const alerts = await getJSON(`${api}/alerts?grid=${encodeURIComponent(grid)}`);
    const active = alerts.find((a) => a.state === "active");
    let box = root.querySelector(".gridgis-alert");
    if (!box) {
      box = document.createElement("div");
      box.className = "gridgis-alert";
      root.prepend(box);
    }
    if (!active) { box.innerHTML = ""; return; }
    box.innerHTML = `<div class="gridgis-head">${esc(active.level)} · ${esc(active.warning)}`
      + (active.acknowledged_at ? ` · <b class="gridgis-ok">${esc(t.c_acknowledged)}</b>`
         : ` <button type="button" class="gridgis-ack" data-alert="${active.id}">`
           + `${esc(t.c_acknowledge)}</button>`)
      + "</div>";
  };
  root.addEventListener("click", async (event) => {
    const button = event.target.closest(".gridgis-ack");
    if (!button) return;
    const url = `${api}/alerts/${button.dataset.alert}`;
    const read = await fetch(url, {credentials: "same-origin"});
    const answer = await fetch(`${url}/ack`, {method: "POST", credentials: "same-origin",
      headers: {"X-Requested-With": "gridgis", "If-Match": read.headers.get("ETag")}});
    if (answer.ok) await showAlert();
    else button.textContent = fill("c_ack_failed", {n: answer.status});
  });

  root.addEventListener("change", (event) => {
    if (!event.target.matches(".gridgis-hide")) return;
    page.hideDone = event.target.checked;
    root.classList.toggle("gridgis-hide-done", page.hideDone);
  });
  window.addEventListener("hashchange", () => load(true));
  if (grid) showGrid().catch(() => {});
  load(true);
  // The live feed: reload at once when this head's grids hear anything.
  const feed = new EventSource(`${api}/feed`);
  let soon = null;
  feed.onmessage = () => {
    if (!soon) soon = setTimeout(() => { soon = null; load(false); }, 300);
  };
  // Sooner while the checklist's items are still being made.
  const tick = () => setTimeout(async () => { await load(false); tick(); },
                                page.checklist && !page.checklist.ready ? 5000 : refreshMs);
  tick();
};
