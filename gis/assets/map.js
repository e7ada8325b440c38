/* gis clearance map: decodes the embedded data and draws it with Leaflet.
 *
 * Written for the gis package (gis/maps.py inlines it into each map).
 * Every text that comes from the layers is put into the page with
 * textContent, never innerHTML, so a parcel owner called "<script>..." shows
 * as text. Parcels are drawn by L.GisParcels (parcels.js): one canvas, one fill
 * per status (no per-feature style function or object: 100k parcels stay fast).
 */
(function () {
  'use strict';
  var D = JSON.parse(document.getElementById('gis-data').textContent);
  var T = D.labels;

  function col(c, i) {
    if (c === undefined || c === null) return '';
    var v = Array.isArray(c) ? c[i] : c.k[c.v[i]];
    return v === null || v === undefined ? '' : v;
  }

  // Flat delta-encoded integer coordinates -> per feature arrays of L.LatLng
  // in Leaflet's multipolygon nesting [[outer, hole...], ...].
  function decode(enc) {
    var c = enc.coords, n = c.length / 2, pts = new Array(n);
    var x = enc.base[0], y = enc.base[1];
    for (var k = 0; k < n; k++) {
      x += c[2 * k]; y += c[2 * k + 1];
      pts[k] = new L.LatLng(y / 1e6, x / 1e6);
    }
    var rings = enc.rings, parts = enc.parts, geoms = enc.geoms, out = new Array(geoms.length - 1);
    for (var g = 0; g < geoms.length - 1; g++) {
      var polys = [];
      for (var p = geoms[g]; p < geoms[g + 1]; p++) {
        var rs = [];
        for (var r = parts[p]; r < parts[p + 1]; r++) rs.push(pts.slice(rings[r], rings[r + 1]));
        polys.push(rs);
      }
      out[g] = polys.length === 1 ? polys[0] : polys;
    }
    return out;
  }

  function table(rows) {
    var t = document.createElement('table');
    t.className = 'gis-popup-table';
    rows.forEach(function (r) {
      if (r[1] === '' || r[1] === null || r[1] === undefined) return;
      var tr = t.insertRow(), th = document.createElement('th'), td = tr.insertCell();
      th.textContent = r[0];
      tr.insertBefore(th, td);
      td.textContent = String(r[1]);
    });
    return t;
  }
  function popupBox(title, rows) {
    var div = document.createElement('div');
    div.className = 'gis-popup';
    var h = document.createElement('h4');
    h.textContent = title;
    div.appendChild(h);
    div.appendChild(table(rows));
    return div;
  }
  function fmt(v, digits) { return (v === '' || v === null) ? '' : Number(v).toFixed(digits); }
  function pct(v) { return (v === '' || v === null) ? '' : (100 * Number(v)).toFixed(1) + '%'; }
  function area(m2) {
    if (m2 === '' || m2 === null) return '';
    return fmt(m2, 1) + ' ' + T.m2 + ' / ' + fmt(m2 / D.m2PerMu, 2) + ' ' + T.mu;
  }
  function yesno(v) { return v === '' ? '' : (Number(v) ? T.yes : T.no); }

  var map = L.map('map', { preferCanvas: true, zoomControl: true, maxZoom: 22, minZoom: 5,
                           zoomSnap: 0.25 });
  // Panes, bottom to top: parcels (overlayPane, 400), project names (gisLabels), then red lines
  // and alerts on one canvas (gisVectors), under Leaflet's tooltips (650) and popups (700). So a
  // project name never hides an alert: the alert is drawn over the name and takes the click.
  map.createPane('gisLabels').style.zIndex = 420;
  map.createPane('gisVectors').style.zIndex = 440;
  var renderer = L.canvas({ padding: 0.3, tolerance: 2, pane: 'gisVectors' });
  window.gisMap = map;
  map.attributionControl.setPrefix('Leaflet');  // credit as text: no link that leaves the offline page

  // --- base layers ----------------------------------------------------------
  var bases = {};
  var blank = L.layerGroup();
  if (D.ortho) {
    map.createPane('gisBase').style.zIndex = 250;  // above tiles, below every overlay
    var ortho = L.imageOverlay(D.ortho.url, D.ortho.bounds, { interactive: false, pane: 'gisBase' });
    // Zoomed in, tiles of the same image down to its own resolution (embedded, over the red
    // lines) draw above the overview; past their finest level Leaflet scales them up.
    var TL = D.ortho.tiles, base = L.layerGroup([ortho]);
    if (TL && TL.maxZoom !== null) {
      var EMPTY = 'data:image/gif;base64,R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7';
      var Tiles = L.TileLayer.extend({ getTileUrl: function (c) {
        return TL.tiles[c.z + '/' + c.x + '/' + c.y] || EMPTY;
      } });
      window.gisOrthoTiles = new Tiles('', { pane: 'gisBase', minZoom: TL.minZoom, maxNativeZoom: TL.maxZoom,
                                            maxZoom: 22, bounds: D.ortho.bounds, errorTileUrl: EMPTY,
                                            attribution: '' });
      base.addLayer(window.gisOrthoTiles);
    }
    bases[T.ortho + (D.ortho.label ? ' ' + D.ortho.label : '')] = base;
    base.addTo(map);
  } else {
    blank.addTo(map);
  }
  bases[T.blank] = blank;

  // --- parcels --------------------------------------------------------------
  var P = D.parcels;
  var parcels = new L.GisParcels(P.geom, P.status, D.statusOrder.map(function (s) {
    return D.statusColours[s];
  }), { fillOpacity: D.ortho ? 0.6 : 0.8, pane: 'overlayPane' });
  function parcelPopup(i) {
    var c = P.cols, st = D.statusOrder[P.status[i]];
    return popupBox(T.parcel + ' ' + col(c.parcel_id, i), [
      [T.status, D.statusLabels[st]], [T.status_date, col(c.status_date, i)],
      [T.district, col(c.district, i)], [T.owner_type, col(c.owner_type, i)],
      [T.land_use, col(c.land_use, i)], [T.area, area(col(c.area_m2, i))],
      [T.projects_of, col(c.projects, i)],
      [T.houses, col(c.houses, i)], [T.households, col(c.households, i)],
      [T.graves, col(c.graves, i)], [T.special_crops, col(c.special_crops, i)],
      [T.attachments, col(c.attachments, i)]]);
  }
  function openParcel(i, latlng) {
    var popup = L.popup({ maxWidth: 360 }).setLatLng(latlng).setContent(parcelPopup(i));
    popup.gisParcel = i;
    popup.openOn(map);  // closes the previous popup first, which clears the old selection
    parcels.select(i);
  }
  // Clicks that no red line or alert took reach the map: find the parcel under them.
  map.on('click', function (e) {
    if (!map.hasLayer(parcels)) return;
    var i = parcels.hit(e.latlng);
    if (i >= 0) openParcel(i, e.latlng);
  });
  map.on('popupclose', function (e) {
    if (e.popup.gisParcel !== undefined && e.popup.gisParcel === parcels._selected) parcels.select(-1);
  });
  parcels.addTo(map);

  // --- red lines --------------------------------------------------------------
  var R = D.redlines, redShapes = decode(R.geom), redLayers = [];
  function projectPopup(i) {
    var c = R.cols;
    return popupBox(col(c.name, i) || col(c.project_id, i), [
      [T.project_id, col(c.project_id, i)], [T.district, col(c.district, i)],
      [T.project_type, col(c.project_type, i)], [T.leader, col(c.leader, i)],
      [T.unit, col(c.unit, i)], [T.deadline, col(c.deadline, i)],
      [T.freeze_date, col(c.freeze_date, i)],
      [T.total_mu, fmt(col(c.total_mu, i), 2) + ' ' + T.mu],
      [T.acquired_mu, fmt(col(c.acquired_mu, i), 2) + ' ' + T.mu],
      [T.delivered_mu, fmt(col(c.delivered_mu, i), 2) + ' ' + T.mu],
      [T.completion_rate, pct(col(c.completion_rate, i))],
      [T.clean_land_rate, pct(col(c.clean_land_rate, i))],
      [T.houses_left, fmt(col(c.houses_left, i), 0)], [T.households_left, fmt(col(c.households_left, i), 0)],
      [T.graves_left, fmt(col(c.graves_left, i), 0)], [T.special_crops_left, fmt(col(c.special_crops_left, i), 0)],
      [T.attachments_left, fmt(col(c.attachments_left, i), 0)], [T.overdue, yesno(col(c.overdue, i))]]);
  }
  for (var j = 0; j < redShapes.length; j++) {
    // bubblingMouseEvents false: a click on a red line or alert must not also reach
    // the map, where it would open the parcel underneath instead.
    var rl = L.polygon(redShapes[j], { renderer: renderer, color: D.redlineColour, weight: 2.5,
                                       fill: false, opacity: 1, bubblingMouseEvents: false });
    rl.gisIndex = j;
    if (D.projectLabels) {
      var tip = document.createElement('span');
      tip.textContent = col(R.cols.name, j) || col(R.cols.project_id, j);
      rl.bindTooltip(tip, { permanent: true, direction: 'center', className: 'gis-project-label',
                            pane: 'gisLabels' });
    }
    redLayers.push(rl);
  }
  var redlines = L.featureGroup(redLayers);
  redlines.on('click', function (e) {
    L.popup({ maxWidth: 360 }).setLatLng(e.latlng).setContent(projectPopup(e.layer.gisIndex)).openOn(map);
  });
  redlines.addTo(map);

  // --- alerts -----------------------------------------------------------------
  var A = D.alerts, alerts = L.featureGroup();
  if (A) {
    var alertShapes = decode(A.geom);
    var alertPopup = function (i) {
      var c = A.cols, kind = col(c.kind, i), st = col(c.status, i);
      var box = popupBox(T.alert_id + ' ' + col(c.alert_id, i), [
        [T.kind, D.kindLabels[kind] || kind], [T.status, D.alertStatusLabels[st] || st],
        [T.verdict, D.alertStatusLabels[col(c.verdict, i)] || col(c.verdict, i)],
        [T.area, area(col(c.area_m2, i))], [T.first_seen, col(c.first_seen, i)],
        [T.last_seen, col(c.last_seen, i)],
        [T.post_freeze, yesno(col(c.post_freeze, i)) +
          (col(c.freeze_date, i) ? ' (' + T.freeze_date + ' ' + col(c.freeze_date, i) + ')' : '')],
        [T.growing, yesno(col(c.growing, i))],
        [T.project_id, col(c.project_id, i)], [T.parcel, col(c.parcel_id, i)],
        [T.district, col(c.district, i)], [T.confidence, fmt(col(c.confidence, i), 2)],
        [T.note, col(c.note, i)]]);
      var chips = A.chips[i];
      if (chips && (chips[0] || chips[1])) {
        var row = document.createElement('div');
        row.className = 'gis-chips';
        [[T.before, chips[0]], [T.after, chips[1]]].forEach(function (ch) {
          // embedded (data:) or, on the map `gis serve` serves, its own permission-checked route
          if (!ch[1] || (ch[1].indexOf('data:image/') !== 0 && ch[1].indexOf('/api/') !== 0)) return;
          var fig = document.createElement('figure'), img = document.createElement('img');
          var cap = document.createElement('figcaption');
          img.src = ch[1];
          cap.textContent = ch[0];
          fig.appendChild(img);
          fig.appendChild(cap);
          row.appendChild(fig);
        });
        box.appendChild(row);
      }
      return box;
    };
    for (var a = 0; a < alertShapes.length; a++) {
      var kind = col(A.cols.kind, a), st = col(A.cols.status, a);
      var open = D.openStatuses.indexOf(st) >= 0;
      var style = { renderer: renderer, fillColor: D.kindColours[kind] || '#888', fillOpacity: open ? 0.85 : 0.35,
                    color: D.alertStatusColours[st] || '#333', weight: open ? 2.5 : 1.5,
                    dashArray: open ? null : '4 3', opacity: 1, bubblingMouseEvents: false };
      var poly = L.polygon(alertShapes[a], style);
      var dot = L.circleMarker([A.points[2 * a + 1] / 1e6, A.points[2 * a] / 1e6],
                               L.extend({ radius: open ? 7 : 5 }, style));
      poly.gisIndex = dot.gisIndex = a;
      alerts.addLayer(poly);
      alerts.addLayer(dot);
    }
    alerts.on('click', function (e) {
      L.popup({ maxWidth: 420 }).setLatLng(e.latlng).setContent(alertPopup(e.layer.gisIndex)).openOn(map);
    });
    alerts.addTo(map);
  }

  // --- controls -----------------------------------------------------------------
  var overlays = {};
  overlays[T.redlines] = redlines;
  overlays[T.parcels] = parcels;
  if (A) overlays[T.alerts] = alerts;
  L.control.layers(bases, overlays, { collapsed: false, position: 'topright' }).addTo(map);
  L.control.scale({ imperial: false, maxWidth: 160, position: 'bottomleft' }).addTo(map);

  var legend = L.control({ position: 'bottomright' });
  legend.onAdd = function () {
    var el = document.getElementById('gis-legend');
    L.DomEvent.disableClickPropagation(el);
    L.DomEvent.disableScrollPropagation(el);
    return el;
  };
  legend.addTo(map);

  var panelEl = document.getElementById('gis-panel');
  if (panelEl) {
    var panel = L.control({ position: 'topleft' });
    panel.onAdd = function () { L.DomEvent.disableClickPropagation(panelEl); return panelEl; };
    panel.addTo(map);
  }

  // Search by parcel or project id: exact first, then case-insensitive prefix.
  var search = L.control({ position: 'topleft' });
  search.onAdd = function () {
    var el = document.getElementById('gis-search');
    L.DomEvent.disableClickPropagation(el);
    return el;
  };
  search.addTo(map);
  function findIn(colData, n, q) {
    var ql = q.toLowerCase(), prefix = -1;
    for (var k = 0; k < n; k++) {
      var v = String(col(colData, k));
      if (v === q) return k;
      if (prefix < 0 && v.toLowerCase().indexOf(ql) === 0) prefix = k;
    }
    return prefix;
  }
  function showLayer(lyr, content) {
    map.fitBounds(lyr.getBounds(), { maxZoom: 19, padding: [40, 40], animate: false });
    L.popup({ maxWidth: 360 }).setLatLng(lyr.getBounds().getCenter()).setContent(content).openOn(map);
  }
  window.gisFind = function (q) {
    q = String(q || '').trim();
    var msg = document.getElementById('gis-search-msg');
    msg.textContent = '';
    if (!q) return null;
    var k = findIn(R.cols.project_id, redLayers.length, q);
    if (k >= 0) { showLayer(redLayers[k], projectPopup(k)); return 'project'; }
    k = findIn(P.cols.parcel_id, parcels.count, q);
    if (k >= 0) {
      var bb = parcels.featureBounds(k);
      map.fitBounds(bb.pad(1.5), { maxZoom: 18, animate: false });  // the parcel and its neighbours
      openParcel(k, bb.getCenter());
      return 'parcel';
    }
    msg.textContent = T.not_found;
    return null;
  };
  document.getElementById('gis-search-form').addEventListener('submit', function (e) {
    e.preventDefault();
    window.gisFind(document.getElementById('gis-search-input').value);
  });

  window.gisLayers = { parcels: parcels, redlines: redlines, alerts: alerts };
  // The boxes above waited in a hidden holder, out of the page flow; measure the map again.
  map.invalidateSize(false);
  // Keep the data clear of the legend on the right and the panel on the left.
  var legendW = document.getElementById('gis-legend').offsetWidth || 0;
  var panelW = panelEl ? panelEl.offsetWidth : 0;
  map.fitBounds(D.view, { paddingTopLeft: [20 + panelW, 20], paddingBottomRight: [30 + legendW, 20] });
  // Ready once the canvas has painted the parcels (two animation frames).
  requestAnimationFrame(function () { requestAnimationFrame(function () { window.gisReady = true; }); });
})();
