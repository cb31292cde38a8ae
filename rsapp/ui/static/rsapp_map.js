// rsapp's map page (inside the app's iframe). The page is built once per scene; afterwards the app only sends
// payloads {key, aoi, layers: [{id, name, colour, classes, summary, geojson}]} to rsappSync, which adds the new answer
// layers and removes the gone ones (the page never reloads). Drawn shapes go to the app's AOI textbox. Two dates
// get a before/after swipe: the "after" pane is clipped to the right of the divider.
(function () {
  'use strict';

  function areaText(m2) {
    if (m2 === null || m2 === undefined || isNaN(m2)) return '';
    var ha = m2 / 1e4;
    return Math.round(m2).toLocaleString('en-US') + ' m² (' + (ha < 10 ? ha.toFixed(2) : Math.round(ha).toLocaleString('en-US')) + ' ha)';
  }

  function escapeHtml(s) {
    return String(s).replace(/[&<>"']/g, function (c) {
      return {'&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;'}[c];
    });
  }

  function answerLayer(spec) {
    return L.geoJSON(spec.geojson, {
      style: function (f) {
        var box = f.properties && f.properties.kind === 'box';
        var colour = (spec.classes && f.properties && spec.classes[f.properties.label]) || spec.colour;
        return {color: colour, weight: box ? 2 : 1, fillColor: colour, fillOpacity: box ? 0 : 0.35};
      },
      onEachFeature: function (f, layer) {
        var p = f.properties || {};
        var lines = ['<b>' + escapeHtml(p.label || '') + '</b>'];
        var area = areaText(p.area_m2);
        if (area) lines.push(area);
        if (p.score !== null && p.score !== undefined) lines.push('score ' + Number(p.score).toFixed(2));
        lines.push('<span class="rsapp-popup-layer">' + escapeHtml(spec.name) + ': ' + escapeHtml(spec.summary) + '</span>');
        layer.bindPopup(lines.join('<br>'));
        layer.bindTooltip(escapeHtml(p.label || '') + (area ? ' · ' + area : ''), {sticky: true});
      }
    });
  }

  function setupSwipe(map, paneName) {
    var pane = map.getPane(paneName);
    var box = L.DomUtil.create('div', 'rsapp-swipe', map.getContainer());
    var line = L.DomUtil.create('div', 'rsapp-swipe-line', box);
    var range = L.DomUtil.create('input', 'rsapp-swipe-range', box);
    range.type = 'range'; range.min = 0; range.max = 1; range.step = 'any'; range.value = 0.5;
    range.title = 'drag: before (left) / after (right)';
    L.DomEvent.disableClickPropagation(box);
    ['pointerdown', 'mousedown', 'touchstart'].forEach(function (ev) {
      range.addEventListener(ev, function (e) { e.stopPropagation(); map.dragging.disable(); });
    });
    ['pointerup', 'mouseup', 'touchend'].forEach(function (ev) {
      range.addEventListener(ev, function () { map.dragging.enable(); });
    });
    function clip() {
      var size = map.getSize();
      var x = size.x * Number(range.value);
      var nw = map.containerPointToLayerPoint([0, 0]);
      var se = map.containerPointToLayerPoint(size);
      pane.style.clip = 'rect(' + [nw.y, se.x, se.y, nw.x + x].join('px,') + 'px)';
      line.style.left = x + 'px';
    }
    range.addEventListener('input', clip);
    map.on('move zoom resize viewreset', clip);
    clip();
  }

  window.rsappSetup = function (opts) {
    var map = opts.map, control = opts.control, key = opts.key;
    var parentDoc = null;
    try { parentDoc = window.parent.document; } catch (e) {}
    var shown = {};  // layer id → Leaflet layer
    var aoiLayer = null, aoiText = null;

    function sendAoi(value) {
      if (!parentDoc) return;
      var box = parentDoc.querySelector(opts.aoiBox);
      if (!box) return;
      box.value = value;
      box.dispatchEvent(new Event('input', {bubbles: true}));
      box.dispatchEvent(new Event('change', {bubbles: true}));
    }
    map.on('draw:created', function (e) {
      sendAoi(JSON.stringify({type: 'Feature', properties: {shape: e.layerType},
                              geometry: e.layer.toGeoJSON().geometry}));
    });
    map.on('draw:deleted', function () { sendAoi(''); });

    function sync(p) {
      if (!p || p.key !== key) return;  // a payload for another scene's page
      var wanted = {};
      (p.layers || []).forEach(function (spec) {
        wanted[spec.id] = true;
        if (shown[spec.id]) return;
        var layer = answerLayer(spec).addTo(map);
        control.addOverlay(layer, escapeHtml(spec.name + ' — ' + spec.summary));
        shown[spec.id] = layer;
      });
      Object.keys(shown).forEach(function (id) {
        if (wanted[id]) return;
        control.removeLayer(shown[id]);
        map.removeLayer(shown[id]);
        delete shown[id];
      });
      var text = p.aoi ? JSON.stringify(p.aoi) : null;
      if (text !== aoiText) {
        if (aoiLayer) { control.removeLayer(aoiLayer); map.removeLayer(aoiLayer); aoiLayer = null; }
        if (p.aoi) {
          aoiLayer = L.geoJSON(p.aoi, {style: {color: '#ffffff', weight: 2, dashArray: '6 4', fillOpacity: 0},
                                       interactive: false}).addTo(map);
          control.addOverlay(aoiLayer, 'AOI');
        }
        aoiText = text;
      }
      window.rsappShown = Object.keys(shown).length;
    }
    window.rsappSync = sync;

    if (opts.swipePane) setupSwipe(map, opts.swipePane);

    // At a fractional zoom Chromium leaves a hairline of the map's background between two rows of tiles
    // (Leaflet issue #3575; leaflet.css's plus-lighter blending does not close it here): each scene tile is drawn
    // 1 px wider and taller than its cell, over the seam, and blended normally (added, the overlap would glow).
    function widen(tile, size) {
      tile.style.width = (size.x + 1) + 'px';
      tile.style.height = (size.y + 1) + 'px';
      tile.style.mixBlendMode = 'normal';
    }
    map.eachLayer(function (layer) {
      if (!(layer instanceof L.TileLayer) || layer.options.className !== 'rsapp-scene') return;
      layer.on('tileloadstart', function (e) { widen(e.tile, layer.getTileSize()); });
      var container = layer.getContainer();  // the tiles asked for before this ran
      if (container) container.querySelectorAll('img.leaflet-tile').forEach(function (t) { widen(t, layer.getTileSize()); });
    });

    // Once the scene's first view has drawn, the app may load its model (not before: it would slow the imagery).
    var told = false;
    map.eachLayer(function (layer) {
      if (!(layer instanceof L.TileLayer) || layer.options.className !== 'rsapp-scene') return;
      layer.once('load', function () {
        if (told || !parentDoc) return;
        told = true;
        var button = parentDoc.querySelector(opts.imageryShown);
        if (button) button.click();
      });
    });

    try {  // the view is kept across pages of the same scene (a reload of the tab, a second date)
      var saved = window.parent.__rsappView;
      if (saved && saved.key === key) map.setView(saved.center, saved.zoom, {animate: false});
      map.on('moveend', function () {
        window.parent.__rsappView = {key: key, center: map.getCenter(), zoom: map.getZoom()};
      });
      sync(window.parent.__rsappPayload);  // what the app sent before this page had loaded
    } catch (e) {}
    window.rsappMap = map;
    window.rsappBounds = opts.bounds;
  };
})();
