(function () {
  'use strict';
  var root = document.getElementById('console');
  var TZ = root.dataset.zone;
  var day = root.dataset.day;
  var followToday = true;
  var POLL_MS = 2000;
  var $ = function (id) { return document.getElementById(id); };
  var rowsEl = $('agenda-rows'), dateEl = $('agenda-date'), searchEl = $('agenda-search');
  var clockFmt = new Intl.DateTimeFormat('pt-BR', { timeZone: TZ, hour: '2-digit', minute: '2-digit', hourCycle: 'h23' });
  var secFmt = new Intl.DateTimeFormat('pt-BR', { timeZone: TZ, hour: '2-digit', minute: '2-digit', second: '2-digit', hourCycle: 'h23' });
  var dayFmt = new Intl.DateTimeFormat('en-CA', { timeZone: TZ, year: 'numeric', month: '2-digit', day: '2-digit' });
  var STATUS = { scheduled: 'Agendada', confirmed: 'Confirmada', no_show: 'Faltou', arrived: 'Chegou',
    in_progress: 'Em atendimento', completed: 'Concluída', cancelled: 'Cancelada', rescheduled: 'Remarcada' };
  var METRICS = [['temperature_c', 'Temperatura', '°C'], ['humidity_pct', 'Umidade', '%'], ['co2_ppm', 'CO₂', 'ppm']];

  function esc(s) {
    return String(s == null ? '' : s).replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;')
      .replace(/"/g, '&quot;').replace(/'/g, '&#39;');
  }
  function clock(iso) { return iso ? clockFmt.format(new Date(iso)) : ''; }
  function todayStr() {
    var p = {}; dayFmt.formatToParts(new Date()).forEach(function (x) { p[x.type] = x.value; });
    return p.year + '-' + p.month + '-' + p.day;
  }
  var longDayFmt = new Intl.DateTimeFormat('pt-BR', { timeZone: 'UTC', weekday: 'long', day: 'numeric', month: 'long', year: 'numeric' });
  function dayLabel(d) {
    var a = d.split('-').map(Number);
    var t = longDayFmt.format(new Date(Date.UTC(a[0], a[1] - 1, a[2], 12)));
    return t.charAt(0).toUpperCase() + t.slice(1) + (d === todayStr() ? ' (hoje)' : '');
  }
  function addDays(d, n) {
    var a = d.split('-').map(Number);
    return new Date(Date.UTC(a[0], a[1] - 1, a[2]) + n * 86400000).toISOString().slice(0, 10);
  }
  function num(v) {
    var r = Math.round(v * 10) / 10;
    return (Number.isInteger(r) ? String(r) : r.toFixed(1)).replace('.', ',');
  }
  function digits(s) { return String(s || '').replace(/\D/g, ''); }
  function phoneText(s) {
    if (!s) return '';
    var d = digits(s);
    if (d.indexOf('55') === 0 && (d.length === 12 || d.length === 13)) d = d.slice(2);
    if (d.length !== 10 && d.length !== 11) return s;
    var rest = d.slice(2), cut = rest.length - 4;
    return '(' + d.slice(0, 2) + ') ' + rest.slice(0, cut) + '-' + rest.slice(cut);
  }
  function fold(s) { return String(s || '').normalize('NFD').replace(/[\u0300-\u036f]/g, '').toLowerCase(); }
  function searchKey(a) {
    var d = digits(a.patient && a.patient.phone), parts = [fold(a.patient && a.patient.name), d];
    if (d.indexOf('55') === 0) parts.push(d.slice(2));
    return parts.join(' ');
  }
  function arrived(a) { return !!a.checked_in_at || ['arrived', 'in_progress', 'completed'].indexOf(a.status) >= 0; }
  function checkinAllowed(a) { return !arrived(a) && ['scheduled', 'confirmed', 'no_show'].indexOf(a.status) >= 0; }

  function badge(a) {
    if (a.checked_in_at) {
      var how = a.checkin_method === 'qr' ? 'Quiosque' : a.checkin_method === 'reception' ? 'Recepção' : (a.checkin_method || '');
      return ['arrived', 'Chegou às ' + clock(a.checked_in_at) + (how ? ' · ' + how : '')];
    }
    var label = STATUS[a.status] || a.status;
    if (['arrived', 'in_progress', 'completed'].indexOf(a.status) >= 0) return ['arrived', label];
    if (a.status === 'cancelled' || a.status === 'rescheduled') return ['cancelled', label];
    if (a.status === 'no_show') return ['late', label];
    return ['waiting', label];
  }

  function rowHTML(a, checkinOpen) {
    var b = badge(a), start = clock(a.scheduled_start), end = clock(a.scheduled_end);
    var name = (a.patient && a.patient.name) || 'Paciente não encontrado';
    var phone = a.patient ? phoneText(a.patient.phone) : '';
    var button = (checkinOpen && checkinAllowed(a))
      ? '<button type="button" class="btn btn-primary btn-checkin" data-checkin="' + esc(a.id) + '" data-name="' + esc(name) +
        '" data-focus-key="checkin:' + esc(a.id) + '" aria-label="Fazer check-in de ' + esc(name) + ', ' + start + '">Check-in</button>'
      : '';
    return '<tr id="appt-' + esc(a.id) + '" class="appt st-' + b[0] + '" data-id="' + esc(a.id) + '" data-search="' + esc(searchKey(a)) + '">' +
      '<td class="time" data-label="Horário"><span class="t-start">' + start + '</span> <span class="t-end">– ' + end + '</span></td>' +
      '<td class="patient" data-label="Paciente"><span class="p-name">' + esc(name) + '</span> <span class="p-phone">' + esc(phone) + '</span></td>' +
      '<td data-label="Profissional">' + esc((a.professional && a.professional.name) || '—') + '</td>' +
      '<td class="col-room" data-label="Sala">' + esc((a.room && a.room.name) || '—') + '</td>' +
      '<td data-label="Serviço">' + esc((a.service && a.service.name) || '—') + '</td>' +
      '<td class="status" data-label="Situação" tabindex="-1" data-focus-key="status:' + esc(a.id) + '"><span class="badge badge-' + b[0] + '">' + esc(b[1]) + '</span></td>' +
      '<td class="action">' + button + '</td></tr>';
  }

  function summary(list) {
    var active = list.filter(function (a) { return a.status !== 'cancelled' && a.status !== 'rescheduled'; });
    var n = active.length, arr = active.filter(arrived).length;
    return n + (n === 1 ? ' consulta' : ' consultas') + ' · ' + arr + (arr === 1 ? ' chegou' : ' chegaram') + ' · ' + (n - arr) + ' aguardando';
  }

  function roomHTML(r, nowMs) {
    var hasLimits = r.limits && Object.keys(r.limits).length > 0;
    var alerts = r.alerts || [];
    var badgeHTML = alerts.length ? '<span class="badge badge-alert">Alerta</span>' : hasLimits ? '<span class="badge badge-ok">Normal</span>' : '';
    var occ = r.presence_sensor ? (r.occupied ? '<p class="occupancy occ-busy">Ocupada</p>' : '<p class="occupancy occ-free">Livre</p>') : '';
    var dl = '';
    METRICS.forEach(function (m) {
      var v = r.readings ? r.readings[m[0]] : null;
      if (v == null) return;
      var l = r.limits && r.limits[m[0]];
      var lim = l ? ' <span class="range">(' + num(l.min) + '–' + num(l.max) + ' ' + m[2] + ')</span>' : '';
      var bad = alerts.some(function (a) { return a.metric === m[0]; });
      dl += '<div class="reading' + (bad ? ' reading-bad' : '') + '" data-metric="' + m[0] + '"><dt>' + m[1] + '</dt><dd><span class="value">' +
        num(v) + ' ' + m[2] + '</span>' + lim + '</dd></div>';
    });
    var when = '';
    var at = r.readings && r.readings.at;
    if (at) {
      when = (nowMs - Date.parse(at) > 15 * 60000)
        ? '<p class="updated stale">Sem leitura recente (última às ' + clock(at) + ')</p>'
        : '<p class="updated">Leitura às ' + clock(at) + '</p>';
    } else if (hasLimits) {
      when = '<p class="updated stale">Sem leituras ainda</p>';
    }
    var al = alerts.map(function (a) {
      if (a.metric === 'sensor_silent') return '<li>Sensor sem leituras desde ' + clock(a.since) + '</li>';
      var m = METRICS.filter(function (x) { return x[0] === a.metric; })[0] || [a.metric, a.metric, ''];
      return '<li>' + m[1] + ' ' + num(a.value) + ' ' + m[2] + ' fora do limite (' + num(a.min) + '–' + num(a.max) + ' ' + m[2] + ') desde ' + clock(a.since) + '</li>';
    }).join('');
    return '<li class="room' + (alerts.length ? ' room-alert' : '') + '" data-room="' + esc(r.id) + '">' +
      '<div class="room-head"><h3>' + esc(r.name) + '</h3>' + badgeHTML + '</div>' + occ +
      (dl ? '<dl class="readings">' + dl + '</dl>' : '') + when +
      (al ? '<ul class="alerts" aria-label="Alertas de ' + esc(r.name) + '">' + al + '</ul>' : '') +
      (r.cold_chain ? '<p class="room-links"><a href="/coldchain?room=' + encodeURIComponent(r.id) + '">Mapa de temperatura</a></p>' : '') + '</li>';
  }

  function bannerText(s) {
    if (!s) return ['offline', 'unreachable', 'Sem contato com o aparelho.', 'Verifique a rede local; os dados serão atualizados quando ele responder.'];
    var state = (s.cloud && s.cloud.state) || 'unknown';
    var pending = (s.outbox && s.outbox.pending) || 0;
    var backlog = pending === 0 ? 'Nada aguardando envio.' : pending + (pending === 1 ? ' registro aguardando' : ' registros aguardando') + ' envio.';
    var last = s.cloud && s.cloud.last_success_at ? ' Última comunicação às ' + clock(s.cloud.last_success_at) + '.' : '';
    var mqtt = (s.mqtt && s.mqtt.connected === false) ? ' Atenção: quiosques e sensores desconectados do aparelho.' : '';
    switch (state) {
      case 'online': return ['online', state, 'Nuvem conectada.', backlog + mqtt];
      case 'degraded': case 'offline':
        return ['offline', state, 'Sem conexão com a nuvem.', 'O check-in continua funcionando. ' + backlog + last + mqtt];
      case 'unauthorized': return ['offline', state, 'A nuvem recusou o acesso do aparelho.', 'O check-in continua funcionando; chame o suporte. ' + backlog + mqtt];
      case 'disabled': return ['local', state, 'Modo local (sem nuvem configurada).', 'O check-in funciona normalmente.' + mqtt];
      default: return ['offline', state, 'Estado da nuvem desconhecido.', backlog + mqtt];
    }
  }

  // --- drawing, keeping focus -------------------------------------------------------------
  var lastAgenda = null, lastRooms = null, lastBanner = null;

  function focusKey() { var el = document.activeElement; return el && el.dataset ? el.dataset.focusKey : null; }
  function restoreFocus(key) {
    if (!key) return;
    var el = document.querySelector('[data-focus-key="' + key + '"]');
    if (!el && key.indexOf('checkin:') === 0) el = document.querySelector('[data-focus-key="status:' + key.slice(8) + '"]');
    if (el) el.focus({ preventScroll: true });
  }

  function drawAgenda(data) {
    var text = JSON.stringify(data) + '|' + todayStr();
    if (text === lastAgenda) return;
    lastAgenda = text;
    var key = focusKey();
    var open = data.date === todayStr();
    rowsEl.innerHTML = data.appointments.map(function (a) { return rowHTML(a, open); }).join('');
    $('agenda-summary').textContent = summary(data.appointments);
    $('agenda-day').textContent = dayLabel(data.date);
    $('agenda-empty').hidden = data.appointments.length > 0;
    applyFilter();
    restoreFocus(key);
  }

  function drawRooms(data) {
    if (window.MedicColdChain) window.MedicColdChain.rooms(data);
    var now = Date.now();
    var text = JSON.stringify(data) + '|' + Math.floor(now / 60000);
    if (text === lastRooms) return;
    lastRooms = text;
    $('room-list').innerHTML = data.rooms.map(function (r) { return roomHTML(r, now); }).join('');
    $('rooms-empty').hidden = data.rooms.length > 0;
  }

  function drawBanner(s) {
    var b = bannerText(s);
    var text = b.join('|');
    if (text === lastBanner) return;
    lastBanner = text;
    var el = $('banner');
    el.className = 'banner banner-' + b[0];
    el.dataset.cloudState = b[1];
    $('banner-title').textContent = b[2];
    $('banner-detail').textContent = b[3];
  }

  function applyFilter() {
    var q = fold(searchEl.value).trim();
    var d = q.replace(/[\s()+\-.]/g, '');
    var byDigits = /^\d+$/.test(d);
    var tokens = q.split(/\s+/).filter(Boolean);
    var shown = 0, total = 0;
    Array.prototype.forEach.call(rowsEl.rows, function (tr) {
      total++;
      var key = tr.dataset.search || '';
      var ok = !q || (byDigits ? key.indexOf(d) >= 0 : tokens.every(function (t) { return key.indexOf(t) >= 0; }));
      tr.hidden = !ok;
      if (ok) shown++;
    });
    $('agenda-nomatch').hidden = !(q && total > 0 && shown === 0);
  }

  // --- polling ----------------------------------------------------------------------------
  function getJSON(path) {
    return fetch(path, { credentials: 'same-origin', headers: { 'Accept': 'application/json' }, cache: 'no-store' }).then(function (r) {
      if (r.status === 401 && path.indexOf('/api/v1/status') !== 0) { location.assign('/'); throw new Error('signed out'); }
      if (!r.ok) throw new Error('HTTP ' + r.status);
      return r.json();
    });
  }

  var timer = null, busy = false, again = false;
  function refresh() {
    if (busy) { again = true; return Promise.resolve(); }
    busy = true;
    if (followToday) {
      var t = todayStr();
      if (t !== day) { day = t; dateEl.value = t; }
    }
    var asked = day;
    return Promise.all([
      getJSON('/api/v1/agenda?date=' + encodeURIComponent(asked)).then(function (d) { if (asked === day) drawAgenda(d); }),
      getJSON('/api/v1/rooms').then(drawRooms),
      getJSON('/api/v1/status').then(drawBanner, function (e) { drawBanner(null); throw e; })
    ]).then(function () {
      $('last-update').textContent = 'atualizado às ' + secFmt.format(new Date());
    }, function () { /* shown by the banner; retried at the next tick */ }).finally(function () {
      busy = false;
      if (again) { again = false; refreshSoon(0); }
    });
  }
  function refreshSoon(ms) {
    if (timer) clearTimeout(timer);
    timer = setTimeout(function () { timer = null; refresh().finally(function () { if (!timer) refreshSoon(POLL_MS); }); }, ms);
  }

  // --- actions ----------------------------------------------------------------------------
  var announceTimer = null;
  function announce(text, isError) {
    var el = $('announce');
    el.classList.toggle('toast-error', !!isError);
    el.textContent = text;
    if (announceTimer) clearTimeout(announceTimer);
    announceTimer = setTimeout(function () { el.textContent = ''; }, 8000);
  }

  rowsEl.addEventListener('click', function (ev) {
    var b = ev.target.closest('button[data-checkin]');
    if (!b || b.getAttribute('aria-disabled') === 'true') return;
    var id = b.dataset.checkin, name = b.dataset.name;
    // aria-disabled, not disabled: a disabled button drops the keyboard focus.
    b.setAttribute('aria-disabled', 'true'); b.textContent = 'Registrando…';
    fetch('/api/v1/checkins', {
      method: 'POST', credentials: 'same-origin',
      headers: { 'Content-Type': 'application/json', 'Accept': 'application/json' },
      body: JSON.stringify({ appointment_id: id })
    }).then(function (r) {
      if (r.status === 401) { location.assign('/'); return; }
      return r.json().catch(function () { return {}; }).then(function (j) {
        if (r.status === 201) announce('Check-in de ' + name + ' registrado às ' + clock(j.checked_in_at) + '.');
        else announce((j.error && j.error.message) || 'Não foi possível fazer o check-in (erro ' + r.status + ').', true);
      });
    }).catch(function () {
      announce('Sem contato com o aparelho: o check-in não foi registrado. Tente de novo.', true);
      b.removeAttribute('aria-disabled'); b.textContent = 'Check-in';
    }).finally(function () { lastAgenda = null; refreshSoon(0); });
  });

  function setDay(d) {
    if (!/^\d{4}-\d{2}-\d{2}$/.test(d)) return;
    day = d; dateEl.value = d; followToday = d === todayStr();
    lastAgenda = null; refreshSoon(0);
  }
  dateEl.addEventListener('change', function () { setDay(dateEl.value); });
  $('prev-day').addEventListener('click', function () { setDay(addDays(day, -1)); });
  $('next-day').addEventListener('click', function () { setDay(addDays(day, 1)); });
  $('today').addEventListener('click', function () { setDay(todayStr()); });
  searchEl.addEventListener('input', applyFilter);
  document.addEventListener('keydown', function (ev) {
    var t = ev.target.tagName;
    if (ev.key === '/' && t !== 'INPUT' && t !== 'TEXTAREA' && !ev.ctrlKey && !ev.metaKey && !ev.altKey) { ev.preventDefault(); searchEl.focus(); }
    if (ev.key === 'Escape' && ev.target === searchEl && searchEl.value) { searchEl.value = ''; applyFilter(); }
  });
  $('logout').addEventListener('click', function () {
    fetch('/api/v1/session', { method: 'DELETE', credentials: 'same-origin' })
      .finally(function () { location.assign('/'); });
  });

  applyFilter();
  refreshSoon(0);
})();
