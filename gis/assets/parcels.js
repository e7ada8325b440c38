/* gis parcel layer: every parcel on one Leaflet canvas, one fill per status.
 *
 * Written for the gis package (gis/maps.py inlines it before map.js).
 * Leaflet's own L.Polygon costs an object, a projection and a clip per
 * feature and one fill()+stroke() per feature: about 1.5 s for 100,000
 * parcels. Here the vertices are projected once into normalised Web Mercator
 * (Float64Array), and a redraw is a scale-and-offset per vertex with one path
 * and one fill per clearance status, culled to the view. Parcels smaller than
 * two pixels are drawn as their bounding box. Clicks are answered from a
 * grid index (built on the first click) and an even-odd point-in-polygon test.
 *
 * The layer subclasses L.Canvas, so panning, zoom animation, padding and
 * retina handling are Leaflet's; only _draw is ours.
 */
(function () {
  'use strict';

  function mercator(enc) {
    var c = enc.coords, n = c.length / 2, U = new Float64Array(n), V = new Float64Array(n);
    var x = enc.base[0], y = enc.base[1], d2r = Math.PI / 180;
    for (var k = 0; k < n; k++) {
      x += c[2 * k]; y += c[2 * k + 1];
      var s = Math.sin(Math.max(Math.min(y / 1e6, 85.05), -85.05) * d2r);
      U[k] = (x / 1e6 + 180) / 360;
      V[k] = 0.5 - Math.log((1 + s) / (1 - s)) / (4 * Math.PI);
    }
    return { U: U, V: V };
  }

  L.GisParcels = L.Canvas.extend({
    options: { padding: 0.4, outlineZoom: 15, batch: 32, fillOpacity: 0.8 },

    initialize: function (enc, status, colours, options) {
      L.Canvas.prototype.initialize.call(this, options);
      var m = mercator(enc), nf = enc.geoms.length - 1;
      this._U = m.U; this._V = m.V;
      this._rings = enc.rings; this._parts = enc.parts; this._geoms = enc.geoms;
      this._status = status; this._colours = colours;
      this.count = nf;
      this.drawn = 0;
      this._selected = -1;
      // per-feature bounding boxes in normalised Mercator
      var bx0 = new Float64Array(nf), by0 = new Float64Array(nf), bx1 = new Float64Array(nf),
          by1 = new Float64Array(nf), U = m.U, V = m.V, rings = enc.rings, parts = enc.parts,
          geoms = enc.geoms;
      for (var f = 0; f < nf; f++) {
        var a = rings[parts[geoms[f]]], b = rings[parts[geoms[f + 1]]];
        var x0 = Infinity, y0 = Infinity, x1 = -Infinity, y1 = -Infinity;
        for (var k = a; k < b; k++) {
          var u = U[k], v = V[k];
          if (u < x0) x0 = u; if (u > x1) x1 = u; if (v < y0) y0 = v; if (v > y1) y1 = v;
        }
        bx0[f] = x0; by0[f] = y0; bx1[f] = x1; by1[f] = y1;
      }
      this._bx0 = bx0; this._by0 = by0; this._bx1 = bx1; this._by1 = by1;
      // features grouped by status (counting sort), drawn one status at a time
      var ns = colours.length, counts = new Int32Array(ns + 1);
      for (f = 0; f < nf; f++) counts[status[f] + 1]++;
      for (var s = 0; s < ns; s++) counts[s + 1] += counts[s];
      var order = new Int32Array(nf), fill = counts.slice(0, ns);
      for (f = 0; f < nf; f++) order[fill[status[f]]++] = f;
      this._order = order; this._statusStart = counts;
    },

    _draw: function () {
      var ctx = this._ctx, map = this._map, b = this._bounds;
      if (!map || !b) return;
      var zoom = map.getZoom(), scale = 256 * Math.pow(2, zoom), o = map.getPixelOrigin();
      var ox = o.x, oy = o.y, U = this._U, V = this._V, rings = this._rings, parts = this._parts,
          geoms = this._geoms, order = this._order, start = this._statusStart;
      var vx0 = (b.min.x + ox) / scale, vx1 = (b.max.x + ox) / scale,
          vy0 = (b.min.y + oy) / scale, vy1 = (b.max.y + oy) / scale;
      var bx0 = this._bx0, by0 = this._by0, bx1 = this._bx1, by1 = this._by1;
      var outline = zoom >= this.options.outlineZoom, drawn = 0, tiny = 2 / scale;
      var opacity = this.options.fillOpacity, batch = this.options.batch, inPath = 0;
      // One fill per status would be fewest calls, but Skia's cost grows faster than
      // linearly with the contours in one path: fill in batches instead.
      function flush(colour) {
        if (!inPath) return;
        ctx.globalAlpha = opacity;
        ctx.fillStyle = colour;
        ctx.fill('evenodd');
        if (outline) {
          ctx.globalAlpha = 0.9;
          ctx.stroke();
        }
        ctx.beginPath();
        inPath = 0;
      }
      ctx.save();
      ctx.lineJoin = 'round';
      ctx.strokeStyle = '#5a5a5a';
      ctx.lineWidth = zoom >= 17 ? 0.8 : 0.5;
      for (var s = 0; s < this._colours.length; s++) {
        ctx.beginPath();
        for (var q = start[s]; q < start[s + 1]; q++) {
          var f = order[q];
          if (bx1[f] < vx0 || bx0[f] > vx1 || by1[f] < vy0 || by0[f] > vy1) continue;
          drawn++;
          if (inPath >= batch) flush(this._colours[s]);
          inPath++;
          if (bx1[f] - bx0[f] < tiny && by1[f] - by0[f] < tiny) {
            ctx.rect(bx0[f] * scale - ox, by0[f] * scale - oy,
                     Math.max((bx1[f] - bx0[f]) * scale, 1), Math.max((by1[f] - by0[f]) * scale, 1));
            continue;
          }
          for (var p = geoms[f]; p < geoms[f + 1]; p++) {
            for (var r = parts[p]; r < parts[p + 1]; r++) {
              var k = rings[r], end = rings[r + 1];
              ctx.moveTo(U[k] * scale - ox, V[k] * scale - oy);
              for (k++; k < end; k++) ctx.lineTo(U[k] * scale - ox, V[k] * scale - oy);
              ctx.closePath();
            }
          }
        }
        flush(this._colours[s]);
      }
      if (this._selected >= 0) {
        ctx.globalAlpha = 1;
        ctx.beginPath();
        this._path(this._selected, scale, ox, oy);
        ctx.strokeStyle = '#00e5ff';
        ctx.lineWidth = 3;
        ctx.stroke();
      }
      ctx.restore();
      this.drawn = drawn;
    },

    _path: function (f, scale, ox, oy) {
      var ctx = this._ctx, U = this._U, V = this._V;
      for (var p = this._geoms[f]; p < this._geoms[f + 1]; p++) {
        for (var r = this._parts[p]; r < this._parts[p + 1]; r++) {
          var k = this._rings[r], end = this._rings[r + 1];
          ctx.moveTo(U[k] * scale - ox, V[k] * scale - oy);
          for (k++; k < end; k++) ctx.lineTo(U[k] * scale - ox, V[k] * scale - oy);
          ctx.closePath();
        }
      }
    },

    select: function (f) {
      this._selected = f;
      if (this._map) this._redraw();
    },

    featureBounds: function (f) {
      function ll(u, v) {
        return L.latLng(Math.atan(Math.sinh(Math.PI * (1 - 2 * v))) * 180 / Math.PI, u * 360 - 180);
      }
      return L.latLngBounds(ll(this._bx0[f], this._by1[f]), ll(this._bx1[f], this._by0[f]));
    },

    // Grid of feature ids by bounding box, about two features per cell.
    _index: function () {
      var n = this.count, g = Math.max(1, Math.ceil(Math.sqrt(n / 2)));
      var x0 = Infinity, y0 = Infinity, x1 = -Infinity, y1 = -Infinity, f;
      for (f = 0; f < n; f++) {
        x0 = Math.min(x0, this._bx0[f]); x1 = Math.max(x1, this._bx1[f]);
        y0 = Math.min(y0, this._by0[f]); y1 = Math.max(y1, this._by1[f]);
      }
      var cw = (x1 - x0) / g || 1, ch = (y1 - y0) / g || 1, cells = new Array(g * g);
      for (f = 0; f < n; f++) {
        var i0 = Math.min(g - 1, Math.floor((this._bx0[f] - x0) / cw)),
            i1 = Math.min(g - 1, Math.floor((this._bx1[f] - x0) / cw)),
            j0 = Math.min(g - 1, Math.floor((this._by0[f] - y0) / ch)),
            j1 = Math.min(g - 1, Math.floor((this._by1[f] - y0) / ch));
        for (var j = j0; j <= j1; j++) for (var i = i0; i <= i1; i++) {
          var c = j * g + i;
          (cells[c] || (cells[c] = [])).push(f);
        }
      }
      this._grid = { g: g, x0: x0, y0: y0, cw: cw, ch: ch, x1: x1, y1: y1, cells: cells };
    },

    // The parcel under a LatLng, or -1.
    hit: function (latlng) {
      if (!this._grid) this._index();
      var G = this._grid, d2r = Math.PI / 180, s = Math.sin(latlng.lat * d2r);
      var u = (latlng.lng + 180) / 360, v = 0.5 - Math.log((1 + s) / (1 - s)) / (4 * Math.PI);
      if (u < G.x0 || u > G.x1 || v < G.y0 || v > G.y1) return -1;
      var i = Math.min(G.g - 1, Math.floor((u - G.x0) / G.cw)),
          j = Math.min(G.g - 1, Math.floor((v - G.y0) / G.ch)),
          cand = G.cells[j * G.g + i] || [], U = this._U, V = this._V;
      for (var c = cand.length - 1; c >= 0; c--) {
        var f = cand[c], inside = false;
        if (u < this._bx0[f] || u > this._bx1[f] || v < this._by0[f] || v > this._by1[f]) continue;
        for (var p = this._geoms[f]; p < this._geoms[f + 1]; p++) {
          for (var r = this._parts[p]; r < this._parts[p + 1]; r++) {
            var a = this._rings[r], e = this._rings[r + 1];
            for (var k = a, l = e - 1; k < e; l = k++) {
              if ((V[k] > v) !== (V[l] > v) && u < (U[l] - U[k]) * (v - V[k]) / (V[l] - V[k]) + U[k]) {
                inside = !inside;
              }
            }
          }
        }
        if (inside) return f;
      }
      return -1;
    }
  });
})();
