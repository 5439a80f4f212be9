// The cold chain on the console (CONTRACT §6), on every console page: the banner of
// excursions and silent sensors with the acknowledgement form; on /coldchain, the rows of the
// monthly chart. Everything comes from the JSON API; see ColdChainPage.swift.
(function () {
  'use strict';
  var $ = function (id) { return document.getElementById(id); };
  var banner = $('cc-banner');
  if (!banner) return;
  var TZ = banner.dataset.zone;
  var POLL_MS = 2000;
  var onConsole = !!$('console');
  var clockFmt = new Intl.DateTimeFormat('pt-BR', { timeZone: TZ, hour: '2-digit', minute: '2-digit', hourCycle: 'h23' });
  var dayFmt = new Intl.DateTimeFormat('en-CA', { timeZone: TZ, year: 'numeric', month: '2-digit', day: '2-digit' });
  var shortDayFmt = new Intl.DateTimeFormat('pt-BR', { timeZone: TZ, day: '2-digit', month: '2-digit' });
  var weekdayFmt = new Intl.DateTimeFormat('pt-BR', { timeZone: 'UTC', weekday: 'short' });

  function esc(s) {
    return String(s == null ? '' : s).replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;')
      .replace(/"/g, '&quot;').replace(/'/g, '&#39;');
  }
  function num(v) {
    if (v == null || isNaN(v)) return '—';
    // Temperatures always with one decimal, as on a paper chart: 4,0 °C.
    return (Math.round(v * 10) / 10).toFixed(1).replace('.', ',').replace(/^-/, '−');
  }
  function localDay(iso) {
    var p = {}; dayFmt.formatToParts(new Date(iso)).forEach(function (x) { p[x.type] = x.value; });
    return p.year + '-' + p.month + '-' + p.day;
  }
  function clock(iso) { return iso ? clockFmt.format(new Date(iso)) : ''; }
  /** "10:02" today, "05/12 10:02" another day. */
  function when(iso) {
    if (!iso) return '';
    return (localDay(iso) === localDay(new Date().toISOString()) ? '' : shortDayFmt.format(new Date(iso)) + ' ') + clock(iso);
  }
  function duration(sec) {
    sec = Math.max(0, Math.round(sec || 0));
    if (sec < 60) return sec + ' s';
    var m = Math.round(sec / 60);
    if (m < 60) return m + ' min';
    return Math.floor(m / 60) + ' h ' + String(m % 60).padStart(2, '0') + ' min';
  }
  function getJSON(path) {
    return fetch(path, { credentials: 'same-origin', headers: { 'Accept': 'application/json' }, cache: 'no-store' }).then(function (r) {
      if (r.status === 401) { location.reload(); throw new Error('signed out'); }
      if (!r.ok) throw new Error('HTTP ' + r.status);
      return r.json();
    });
  }
  function chartLink(room, iso) {
    return '/coldchain?room=' + encodeURIComponent(room) + (iso ? '&amp;month=' + localDay(iso).slice(0, 7) : '');
  }

  // --- the banner -------------------------------------------------------------------------
  var rooms = {}, excursions = [];
  var list = $('cc-list'), notice = $('cc-notice');

  function roomName(id, fallback) { return (rooms[id] && rooms[id].name) || fallback || id; }
  /** Reached the alarm state: `alarm` now, or `alarm_at` set (an ended one that alarmed). */
  function alarmed(e) { return e.state === 'alarm' || !!e.alarm_at || !('alarm_at' in e); }
  function excursionText(e) {
    var name = roomName(e.room_id, e.room_name);
    if (!e.ended_at) {
      var r = rooms[e.room_id], now = r && r.readings ? r.readings.temperature_c : null;
      var lim = r && r.limits && r.limits.temperature_c;
      var shown = now != null ? now : (lim && e.min_c < lim.min ? e.min_c : e.max_c);
      return name + ': temperatura fora da faixa (' + num(shown) + ' °C) desde ' + when(e.started_at) +
        (e.state === 'alarm' ? ' — alarme' : ' — em observação');
    }
    var end = localDay(e.ended_at) === localDay(e.started_at) ? clock(e.ended_at) : when(e.ended_at);
    return name + ': temperatura fora da faixa de ' + when(e.started_at) + ' a ' + end + ' (' +
      duration(e.duration_seconds) + '; mín. ' + num(e.min_c) + ' °C, máx. ' + num(e.max_c) + ' °C) — alarme encerrado, registre a ação tomada';
  }
  function wanted() {
    // Open excursions first (alarms, then those not yet alarming), then silent sensors, then
    // ended alarms waiting for their action; oldest first within each.
    var rank = function (e) { return !e.ended_at ? (e.state === 'alarm' ? 0 : 2) : 3; };
    var out = [], pending = excursions.filter(function (e) { return !e.acknowledged_by && (!e.ended_at || alarmed(e)); })
      .sort(function (a, b) { return rank(a) - rank(b) || (a.started_at < b.started_at ? -1 : 1); });
    pending.filter(function (e) { return rank(e) === 0; }).forEach(add);
    Object.keys(rooms).sort().forEach(function (id) {
      var r = rooms[id], cc = r.cold_chain;
      if (!cc || !cc.sensor_silent) return;
      var last = cc.last_reading_at;
      out.push({ key: 'silent:' + id, room: id, cls: 'cc-silent',
        text: r.name + ': sem leituras do sensor' + (last ? ' desde ' + when(last) : ' (nenhuma leitura ainda)'), at: last });
    });
    pending.filter(function (e) { return rank(e) > 0; }).forEach(add);
    return out;
    function add(e) {
      out.push({ key: 'exc:' + e.id, id: e.id, room: e.room_id, cls: !e.ended_at && e.state !== 'alarm' ? 'cc-watch' : 'cc-alarm',
        text: excursionText(e), at: e.started_at });
    }
  }
  function itemHTML(w) {
    var link = ' <a class="cc-link" href="' + chartLink(w.room, w.at) + '">Mapa de temperatura</a>';
    var form = '';
    if (w.id) {
      var i = esc(w.id);
      form = '<form class="cc-form" data-excursion="' + i + '" novalidate>' +
        '<label for="cc-action-' + i + '">Ação tomada</label>' +
        '<textarea id="cc-action-' + i + '" name="action" rows="1" maxlength="500" required aria-describedby="cc-err-' + i + '" ' +
        'placeholder="Ex.: porta fechada, vacinas conferidas"></textarea>' +
        '<button type="submit" class="btn btn-primary">Registrar ação</button>' +
        '<p class="cc-error" id="cc-err-' + i + '" role="alert"></p></form>';
    }
    return '<p class="cc-text"><strong class="cc-what">' + esc(w.text) + '</strong>' + link + '</p>' + form;
  }
  function busy(li) {
    var ta = li.querySelector('textarea');
    return li.contains(document.activeElement) || (ta && ta.value.trim() !== '');
  }
  function draw() {
    var want = wanted(), seen = {};
    want.forEach(function (w, i) {
      seen[w.key] = true;
      var li = null;
      Array.prototype.forEach.call(list.children, function (x) { if (x.dataset.key === w.key) li = x; });
      if (!li) {
        li = document.createElement('li');
        li.dataset.key = w.key;
        li.innerHTML = itemHTML(w);
      } else if (li.querySelector('.cc-what').textContent !== w.text) {
        li.querySelector('.cc-what').textContent = w.text;  // the form (and what is typed in it) stays
      }
      li.className = 'cc-item ' + w.cls;
      if (list.children[i] !== li) list.insertBefore(li, list.children[i] || null);
    });
    Array.prototype.slice.call(list.children).forEach(function (li) {
      // Acknowledged elsewhere while someone is typing here: kept, the submit will say so.
      if (!seen[li.dataset.key] && !busy(li)) li.remove();
    });
    banner.hidden = !list.children.length && !notice.textContent;
  }

  var noticeTimer = null;
  function say(text, isError) {
    notice.textContent = text;
    notice.classList.toggle('cc-notice-error', !!isError);
    banner.hidden = false;
    notice.setAttribute('tabindex', '-1');
    notice.focus({ preventScroll: true });
    if (noticeTimer) clearTimeout(noticeTimer);
    noticeTimer = setTimeout(function () { notice.textContent = ''; draw(); }, 30000);
  }

  var timer = null, running = false;
  function refresh() {
    if (running) return Promise.resolve();
    running = true;
    var asks = [getJSON('/api/v1/coldchain/excursions').then(function (d) { excursions = d.excursions || []; })];
    if (!onConsole) asks.push(getJSON('/api/v1/rooms').then(setRooms));
    return Promise.all(asks).then(draw, function () { /* retried at the next tick */ }).finally(function () { running = false; });
  }
  function refreshSoon(ms) {
    if (timer) clearTimeout(timer);
    timer = setTimeout(function () { timer = null; refresh().finally(function () { if (!timer) refreshSoon(POLL_MS); }); }, ms);
  }
  function setRooms(d) {
    rooms = {};
    (d.rooms || []).forEach(function (r) { rooms[r.id] = r; });
  }

  list.addEventListener('submit', function (ev) {
    var form = ev.target.closest('form.cc-form');
    if (!form) return;
    ev.preventDefault();
    var li = form.closest('li'), id = form.dataset.excursion;
    var ta = form.querySelector('textarea'), err = form.querySelector('.cc-error'), btn = form.querySelector('button');
    if (btn.getAttribute('aria-disabled') === 'true') return;
    var action = ta.value.trim(), n = Array.from(action).length;
    if (n === 0 || n > 500) {
      err.textContent = n === 0 ? 'Descreva a ação tomada antes de registrar.' : 'Use no máximo 500 caracteres (agora: ' + n + ').';
      ta.setAttribute('aria-invalid', 'true');
      ta.focus();
      return;
    }
    err.textContent = ''; ta.removeAttribute('aria-invalid');
    btn.setAttribute('aria-disabled', 'true'); btn.textContent = 'Registrando…';
    var reset = function () { btn.removeAttribute('aria-disabled'); btn.textContent = 'Registrar ação'; };
    fetch('/api/v1/coldchain/excursions/' + encodeURIComponent(id) + '/ack', {
      method: 'POST', credentials: 'same-origin',
      headers: { 'Content-Type': 'application/json', 'Accept': 'application/json' },
      body: JSON.stringify({ action: action })
    }).then(function (r) {
      if (r.status === 401) { location.reload(); return; }
      return r.json().catch(function () { return {}; }).then(function (j) {
        if (r.status === 201) {
          li.remove();
          say('Ação registrada por ' + j.acknowledged_by + ' às ' + clock(j.acknowledged_at) + '.');
        } else if (r.status === 409) {
          // Someone else was first: say who, from the fresh list, and drop the form.
          return getJSON('/api/v1/coldchain/excursions').then(function (d) { excursions = d.excursions || []; }, function () {}).then(function () {
            var e = excursions.filter(function (x) { return x.id === id; })[0];
            li.remove();
            say(e && e.acknowledged_by
              ? 'Esta excursão já foi registrada por ' + e.acknowledged_by + '.' + (e.action ? ' Ação: ' + e.action : '')
              : (j.error && j.error.message) || 'Esta excursão já foi registrada.', true);
          });
        } else {
          err.textContent = (j.error && j.error.message) || 'Não foi possível registrar a ação (erro ' + r.status + ').';
          reset();
        }
      });
    }).catch(function () {
      err.textContent = 'Sem contato com o aparelho: a ação não foi registrada. Tente de novo.';
      reset();
    }).finally(function () { refreshSoon(0); });
  });

  // The console's own poll already reads the rooms: it hands them over.
  window.MedicColdChain = { rooms: function (d) { setRooms(d); draw(); } };
  if (!onConsole && $('logout')) {
    $('logout').addEventListener('click', function () {
      fetch('/api/v1/session', { method: 'DELETE', credentials: 'same-origin' }).finally(function () { location.assign('/'); });
    });
  }
  refreshSoon(0);

  // --- the monthly chart (/coldchain) -----------------------------------------------------
  var chart = $('chart');
  if (!chart) return;
  var room = chart.dataset.room, month = chart.dataset.month, today = chart.dataset.today;
  var lo = parseFloat(chart.dataset.min), hi = parseFloat(chart.dataset.max);
  $('chart-print').addEventListener('click', function () { window.print(); });

  function t(v) { return '<td class="c-num' + (v != null && (v < lo || v > hi) ? ' c-out' : '') + '">' + num(v) + '</td>'; }
  function point(p, none) {
    if (!p) return '<td colspan="4" class="c-none">' + none + '</td>';
    return '<td class="c-time">' + clock(p.at) + '</td>' + t(p.current_c) + t(p.min_c) + t(p.max_c);
  }
  /** A time on the chart's row for `date`: "10:02", or "05/12 22:40" on another day. */
  function at(iso, date) { return localDay(iso) === date ? clock(iso) : shortDayFmt.format(new Date(iso)) + ' ' + clock(iso); }
  function excursionsCell(list, date) {
    if (!list || !list.length) return '<td class="c-exc c-nil">nenhuma</td>';
    return '<td class="c-exc"><ul>' + list.map(function (e) {
      var span = at(e.started_at, date) + '–' + (e.ended_at ? at(e.ended_at, date) : 'em curso');
      var what = span + ' (' + duration(e.duration_seconds) + '; mín. ' + num(e.min_c) + ', máx. ' + num(e.max_c) + ')';
      var action = e.action ? ' — ' + esc(e.action) : ' — <strong class="c-noack">sem ação registrada</strong>';
      return '<li>' + esc(what) + action + '</li>';
    }).join('') + '</ul></td>';
  }
  function whoCell(list) {
    var names = [];
    (list || []).forEach(function (e) { if (e.acknowledged_by && names.indexOf(e.acknowledged_by) < 0) names.push(e.acknowledged_by); });
    return '<td class="c-who">' + esc(names.join(', ')) + '</td>';
  }
  function dayRow(d) {
    var a = d.date.split('-').map(Number);
    var wd = weekdayFmt.format(new Date(Date.UTC(a[0], a[1] - 1, a[2], 12))).replace('.', '');
    var head = '<th scope="row" class="c-day">' + d.date.slice(8) + ' <span class="c-wd">' + esc(wd) + '</span></th>';
    if (d.date > today) return '<tr class="c-future" data-date="' + d.date + '">' + head + '<td colspan="13" class="c-none">—</td></tr>';
    if (!d.readings) {
      return '<tr class="c-empty" data-date="' + d.date + '">' + head + '<td colspan="11" class="c-none c-noread">sem leituras</td>' +
        excursionsCell(d.excursions, d.date) + whoCell(d.excursions) + '</tr>';
    }
    return '<tr data-date="' + d.date + '">' + head + point(d.opening, 'sem leitura na abertura') +
      point(d.closing, d.date === today ? 'dia em curso' : 'sem leitura no fechamento') + t(d.day_min_c) + t(d.day_max_c) +
      '<td class="c-num">' + d.readings + '</td>' + excursionsCell(d.excursions, d.date) + whoCell(d.excursions) + '</tr>';
  }
  getJSON('/api/v1/coldchain/' + encodeURIComponent(room) + '/chart?month=' + encodeURIComponent(month)).then(function (d) {
    $('chart-rows').innerHTML = (d.days || []).map(dayRow).join('');
    // One A4 page: on paper each excursion gets 3 lines, or 2, or 1 when the month has many
    // (about 54 printed lines fit under the header; a day without excursions takes one).
    var lines = function (n) {
      return (d.days || []).reduce(function (sum, day) { return sum + Math.max(1, (day.excursions || []).length * n); }, 0);
    };
    chart.dataset.clamp = [3, 2].filter(function (n) { return lines(n) <= 54; })[0] || 1;
    chart.dataset.loaded = 'true';
  }, function (e) {
    $('chart-rows').innerHTML = '<tr><td colspan="14" class="c-none">Não foi possível carregar o mapa.</td></tr>';
    $('chart-error').textContent = 'Não foi possível carregar o mapa (' + e.message + '). Recarregue a página; se persistir, chame o suporte.';
  });
})();
