// The map page: upload a photo to /locate and draw the prediction and its matches.
// State for scripts and tests lives on window.vgloc (map, result, marker, circle, matchMarkers).
(function () {
  "use strict";
  const config = window.VGLOC_CONFIG || {};
  const mapEl = document.getElementById("map");
  const statusEl = document.getElementById("status");
  const resultEl = document.getElementById("result");
  const matchesEl = document.getElementById("matches");
  const preview = document.getElementById("preview");
  const drop = document.getElementById("drop");
  const input = document.getElementById("file");

  const map = L.map(mapEl, { worldCopyJump: true }).setView([20, 0], 2);
  if (config.tiles) {
    L.tileLayer(config.tiles, { attribution: config.attribution || "", maxZoom: 19 }).addTo(map);
  } else {
    mapEl.classList.add("no-tiles");
  }
  L.control.scale({ metric: true, imperial: false }).addTo(map);
  const layer = L.layerGroup().addTo(map);
  const state = (window.vgloc = { map: map, result: null, error: null, marker: null, circle: null, matchMarkers: [] });

  function setState(name) {
    document.body.dataset.state = name;
  }
  function say(text, isError) {
    statusEl.textContent = text;
    statusEl.classList.toggle("error", !!isError);
  }
  function fmt(x, digits) {
    return x === null || x === undefined ? "-" : Number(x).toFixed(digits);
  }
  function metres(a, b) {
    return L.latLng(a).distanceTo(L.latLng(b));
  }

  function draw(r) {
    layer.clearLayers();
    matchesEl.textContent = "";
    state.result = r;
    state.matchMarkers = [];
    state.marker = state.circle = null;
    resultEl.textContent = "";
    if (r.lat === null || r.lon === null) {
      resultEl.textContent = "This index has no latitude/longitude (UTM only): nothing to draw.";
      return;
    }
    const where = [r.lat, r.lon];
    const lines = [
      "position " + fmt(r.lat, 6) + ", " + fmt(r.lon, 6),
      "confidence " + fmt(r.confidence, 2) + " (" + r.method + ")",
      "circle radius " + fmt(r.radius_m, 0) + " m",
      "time " + fmt(r.timings.total_ms, 0) + " ms (batch of " + r.timings.batch_size + ")",
    ];
    for (const line of lines) {
      const div = document.createElement("div");
      div.textContent = line;
      resultEl.appendChild(div);
    }
    const bounds = L.latLngBounds([where]);
    for (const m of r.matches) {
      if (m.lat === null) continue;
      const tip = document.createElement("div");
      tip.className = "match-tip";
      const img = document.createElement("img");
      img.src = m.thumbnail;
      img.alt = "match " + m.rank;
      tip.appendChild(img);
      tip.appendChild(document.createTextNode("#" + m.rank + " sim " + fmt(m.similarity, 3)));
      const dot = L.circleMarker([m.lat, m.lon], { radius: 6, color: "#d35400", weight: 2, fillOpacity: 0.6 })
        .bindTooltip(tip, { direction: "top" })
        .addTo(layer);
      state.matchMarkers.push(dot);
      bounds.extend([m.lat, m.lon]);
      const li = document.createElement("li");
      const thumb = img.cloneNode();
      li.appendChild(thumb);
      li.appendChild(
        document.createTextNode("sim " + fmt(m.similarity, 3) + ", " + fmt(metres(where, [m.lat, m.lon]), 0) + " m away")
      );
      li.addEventListener("mouseenter", function () { dot.openTooltip(); });
      li.addEventListener("mouseleave", function () { dot.closeTooltip(); });
      matchesEl.appendChild(li);
    }
    if (r.radius_m) {
      // Opacity follows the confidence: a faint circle is a doubtful prediction.
      state.circle = L.circle(where, {
        radius: r.radius_m, color: "#2a6fdb", weight: 1, fillOpacity: 0.1 + 0.3 * r.confidence,
      }).addTo(layer);
      bounds.extend(state.circle.getBounds());
    }
    state.marker = L.marker(where, { title: "prediction" })
      .bindPopup("prediction<br>" + fmt(r.lat, 6) + ", " + fmt(r.lon, 6) + "<br>confidence " + fmt(r.confidence, 2))
      .addTo(layer);
    const el = state.marker.getElement();
    el.dataset.lat = String(r.lat);
    el.dataset.lon = String(r.lon);
    el.id = "prediction-marker";
    map.fitBounds(bounds, { padding: [40, 40], maxZoom: 18, animate: false });
  }

  async function locate(file) {
    if (!file) return;
    state.error = null;
    if (config.maxBytes && file.size > config.maxBytes) {
      say("This file is " + file.size + " bytes; the server accepts at most " + config.maxBytes + ".", true);
      return;
    }
    setState("busy");
    say("Locating " + file.name + "...");
    preview.src = URL.createObjectURL(file);
    preview.hidden = false;
    const form = new FormData();
    form.append("file", file, file.name);
    try {
      const response = await fetch("/locate", { method: "POST", body: form });
      const body = await response.json();
      if (!response.ok) {
        state.error = body.error || { message: response.statusText };
        say("Refused: " + state.error.message, true);
        setState("error");
        return;
      }
      draw(body);
      say("Located " + file.name + ".");
      setState("done");
    } catch (err) {
      state.error = { message: String(err) };
      say("Failed: " + err, true);
      setState("error");
    }
  }

  input.addEventListener("change", function () { locate(input.files[0]); });
  ["dragenter", "dragover"].forEach(function (name) {
    document.addEventListener(name, function (e) {
      e.preventDefault();
      document.body.classList.add("dragging");
    });
  });
  ["dragleave", "drop"].forEach(function (name) {
    document.addEventListener(name, function (e) {
      e.preventDefault();
      document.body.classList.remove("dragging");
    });
  });
  document.addEventListener("drop", function (e) {
    if (e.dataTransfer && e.dataTransfer.files.length) locate(e.dataTransfer.files[0]);
  });
  drop.addEventListener("keydown", function (e) {
    if (e.key === "Enter" || e.key === " ") input.click();
  });
})();
