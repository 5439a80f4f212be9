#!/usr/bin/python3
"""The reception console in a real browser (Debian's chromium, headless, through
python3-selenium and chromium-driver).

Driven by ConsoleTests.browser (Tests/IntegrationTests/ConsoleTests.swift), which starts
mosquitto, the cloud stub and the daemon, seeds a clinic day, creates the staff account and
passes everything here on the command line. Runnable by hand against any running daemon:

  /usr/bin/python3 tests/browser/console_test.py --url http://127.0.0.1:8080 \
      --user recepcao --password '...' --mqtt-port 1883 --site demo \
      --stub-url http://127.0.0.1:8288 --kiosk-qr '...' --kiosk-patient 'Beatriz Santos' \
      --reception-patient 'Maria Aparecida Souza' --screenshots docs/screenshots

Steps: log in (a wrong password first), see the seeded agenda, search by name and phone,
check a patient in with the keyboard, see a kiosk check-in appear without reload, check the
rooms board, labels, contrast (WCAG AA) and layout at 1366x768 and on a tablet, every
button and banner fully visible at 1280x800, 1366x768, 1024x768 and 390x844, see the
offline banner when the cloud stub is down, log out. Exit status 0 when all pass.
"""
import argparse
import base64
import calendar
import json
import os
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request

from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException, TimeoutException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import WebDriverWait

STEP = [0]


def step(msg):
    STEP[0] += 1
    print(f"[browser] {STEP[0]:02d} {msg}", flush=True)


def fail(msg):
    raise AssertionError(msg)


def check(cond, msg):
    if not cond:
        fail(msg)


CONTRAST_JS = r"""
function parse(s) {
  var m = /rgba?\(([^)]+)\)/.exec(s); if (!m) return null;
  var p = m[1].split(',').map(parseFloat); return { rgb: p.slice(0, 3), a: p.length > 3 ? p[3] : 1 };
}
function lum(rgb) {
  var a = rgb.map(function (v) { v /= 255; return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); });
  return 0.2126 * a[0] + 0.7152 * a[1] + 0.0722 * a[2];
}
function background(el) {
  while (el) {
    var c = parse(getComputedStyle(el).backgroundColor);
    if (c && c.a > 0.5) return c.rgb;
    el = el.parentElement;
  }
  return [255, 255, 255];
}
var bad = [], checked = 0;
document.querySelectorAll('body *').forEach(function (el) {
  if (!el.getClientRects().length) return;
  var own = Array.prototype.some.call(el.childNodes, function (n) { return n.nodeType === 3 && n.textContent.trim(); });
  if (!own) return;
  var st = getComputedStyle(el);
  if (st.visibility === 'hidden' || parseFloat(st.opacity) === 0) return;
  if (el.closest('.sr-only') || el.closest('[hidden]')) return;
  if (el.disabled) return;
  var fg = parse(st.color); if (!fg) return;
  var l1 = lum(fg.rgb), l2 = lum(background(el));
  var ratio = (Math.max(l1, l2) + 0.05) / (Math.min(l1, l2) + 0.05);
  var size = parseFloat(st.fontSize), bold = parseInt(st.fontWeight, 10) >= 700;
  var need = (size >= 24 || (size >= 18.66 && bold)) ? 3 : 4.5;
  checked++;
  if (ratio < need) bad.push(el.tagName + '.' + el.className + ' "' + el.textContent.trim().slice(0, 40) + '" ' + ratio.toFixed(2) + ' < ' + need);
});
return { bad: bad, checked: checked };
"""

TWINS_JS = r"""
var done = arguments[arguments.length - 1];
fetch('/', { credentials: 'same-origin' }).then(function (r) { return r.text(); }).then(function (t) {
  var d = new DOMParser().parseFromString(t, 'text/html');
  var out = {};
  ['agenda-rows', 'room-list', 'agenda-summary', 'agenda-day'].forEach(function (id) {
    out[id] = [d.getElementById(id).innerHTML, document.getElementById(id).innerHTML];
  });
  done(out);
});
"""

LABELS_JS = r"""
var bad = [];
document.querySelectorAll('input, select, textarea, button').forEach(function (el) {
  if (!el.getClientRects().length || el.type === 'hidden') return;
  var name = el.getAttribute('aria-label') || el.getAttribute('aria-labelledby') ||
    (el.labels && el.labels.length ? el.labels[0].textContent.trim() : '') ||
    (el.tagName === 'BUTTON' ? el.textContent.trim() : '');
  if (!name) bad.push(el.outerHTML.slice(0, 80));
});
return bad;
"""


# Every control and banner a person must reach: scrolled into view (vertical scrolling is
# fine), it must lie inside the viewport and inside its card, and the browser's hit test at
# its centre and near each edge must land on it (nothing drawn over it, nothing clipped).
VISIBLE_JS = r"""
var sel = 'button, a[href], input, textarea, select, .banner, .cc-banner, .cc-item';
var bad = [], checked = 0;
var els = Array.prototype.filter.call(document.querySelectorAll(sel), function (el) {
  return el.getClientRects().length && !el.closest('.sr-only') && !el.classList.contains('skip') &&
    getComputedStyle(el).visibility !== 'hidden';
});
els.forEach(function (el) {
  el.scrollIntoView({ block: 'center', inline: 'nearest' });
  var r = el.getBoundingClientRect();
  var what = el.tagName.toLowerCase() + (el.id ? '#' + el.id : '') + ' "' + (el.textContent || el.value || '').trim().slice(0, 30) + '"';
  checked++;
  var eps = 0.5;
  // Horizontally always; vertically when it fits (a banner taller than a phone is read by scrolling).
  var fits = r.height <= window.innerHeight;
  if (r.left < -eps || r.right > window.innerWidth + eps || (fits && (r.top < -eps || r.bottom > window.innerHeight + eps))) {
    bad.push(what + ': outside the ' + window.innerWidth + 'x' + window.innerHeight + ' viewport (' +
      [r.left, r.top, r.right, r.bottom].map(Math.round).join(',') + ')');
    return;
  }
  var card = el.parentElement && el.parentElement.closest('.panel, .room, .cc-item, .chart-card');
  if (card) {
    var c = card.getBoundingClientRect();
    if (r.left < c.left - eps || r.right > c.right + eps) {
      bad.push(what + ': sticks out of its card (' + Math.round(r.left) + '..' + Math.round(r.right) + ' in ' +
        Math.round(c.left) + '..' + Math.round(c.right) + ')');
      return;
    }
  }
  var cx = (r.left + r.right) / 2, cy = fits ? (r.top + r.bottom) / 2 : Math.max(r.top, 0) + 10, dx = Math.min(3, r.width / 4), dy = Math.min(3, r.height / 4);
  var pts = [[cx, cy], [r.left + dx, cy], [r.right - dx, cy]];
  if (fits) pts.push([cx, r.top + dy], [cx, r.bottom - dy]);
  pts.some(function (p) {
    var hit = document.elementFromPoint(p[0], p[1]);
    if (hit && (hit === el || el.contains(hit))) return false;
    bad.push(what + ': covered at (' + Math.round(p[0]) + ',' + Math.round(p[1]) + ') by ' +
      (hit ? hit.tagName.toLowerCase() + (hit.id ? '#' + hit.id : '') + '.' + hit.className : 'nothing'));
    return true;
  });
});
window.scrollTo(0, 0);
return { bad: bad, checked: checked };
"""

# The widths a reception PC, a laptop, an old monitor and a phone have.
COMMON_SIZES = [(1280, 800), (1366, 768), (1024, 768), (390, 844)]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", required=True)
    ap.add_argument("--user", required=True)
    ap.add_argument("--password", required=True)
    ap.add_argument("--mqtt-port", type=int, required=True)
    ap.add_argument("--site", default="test-site")
    ap.add_argument("--stub-url", required=True)
    ap.add_argument("--kiosk-qr", required=True)
    ap.add_argument("--kiosk-patient", required=True)
    ap.add_argument("--reception-patient", required=True)
    ap.add_argument("--expect-patients", default="", help="names the agenda must show, comma-separated, in time order")
    ap.add_argument("--search-phone", default="", help="phone digits that select --kiosk-patient alone")
    ap.add_argument("--name-query", default="", help="a name search typed without accents...")
    ap.add_argument("--name-expect", default="", help="...and the one patient it must leave visible")
    ap.add_argument("--screenshots", required=True)
    ap.add_argument("--chromium", default="/usr/bin/chromium")
    ap.add_argument("--chromedriver", default="/usr/bin/chromedriver")
    ap.add_argument("--coldchain-room", default="", help="a cold-chain room (alarm delay of a few seconds): the banner, form, chart")
    ap.add_argument("--coldchain-name", default="Geladeira de vacinas")
    ap.add_argument("--second-user", default="", help="another staff account, who acknowledges first (the 409)")
    ap.add_argument("--second-password", default="")
    ap.add_argument("--chart-fixture", default="",
                    help="a chart API answer (JSON file) served to the page instead of the daemon's, until the daemon has the route")
    args = ap.parse_args()

    opts = webdriver.ChromeOptions()
    opts.binary_location = args.chromium
    for a in ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1366,768", "--lang=pt-BR",
              "--force-device-scale-factor=1", "--hide-scrollbars"]:
        opts.add_argument(a)
    opts.add_experimental_option("prefs", {"intl.accept_languages": "pt-BR,pt"})
    # The date field follows the browser's UI language: Brazilian, as at the clinic.
    env = dict(os.environ, LANGUAGE="pt_BR:pt", LANG="pt_BR.UTF-8")
    driver = webdriver.Chrome(service=Service(executable_path=args.chromedriver, env=env), options=opts)
    driver.set_script_timeout(10)
    driver.set_window_size(1366, 768)
    wait = WebDriverWait(driver, 15, poll_frequency=0.1, ignored_exceptions=[StaleElementReferenceException])

    def by_id(i):
        return driver.find_element(By.ID, i)

    # Rows are redrawn when the data changes: read them in one script call (no stale handles).
    ROWS_JS = """
      return Array.prototype.map.call(document.querySelectorAll('#agenda-rows tr'), function (tr) {
        return { id: tr.dataset.id, name: tr.querySelector('.p-name').textContent, start: tr.querySelector('.t-start').textContent,
                 status: tr.querySelector('.status').textContent, text: tr.innerText, shown: !tr.hidden,
                 button: !!tr.querySelector('button[data-checkin]') };
      });"""

    def rows():
        return driver.execute_script(ROWS_JS)

    def row_for(name):
        return next((r for r in rows() if r["name"] == name), None)

    def status_of(name):
        r = row_for(name)
        return r["status"] if r else None

    def visible_names():
        return [r["name"] for r in rows() if r["shown"]]

    def quiet():
        """For pictures: no toast, no focus ring, scrolled to the top."""
        driver.execute_script("document.getElementById('announce').textContent = '';"
                              "if (document.activeElement) document.activeElement.blur(); window.scrollTo(0, 0)")
        time.sleep(0.3)

    def a11y(where, min_texts=20):
        r = driver.execute_script(CONTRAST_JS)
        check(r["checked"] >= min_texts, f"{where}: contrast check saw only {r['checked']} texts")
        check(not r["bad"], f"{where}: text below WCAG AA contrast: {r['bad']}")
        missing = driver.execute_script(LABELS_JS)
        check(not missing, f"{where}: controls without a label: {missing}")
        overflow = driver.execute_script("return document.documentElement.scrollWidth - window.innerWidth")
        check(overflow <= 0, f"{where}: the page scrolls sideways by {overflow}px")

    def all_visible(where, min_checked=8, shots=None):
        """VISIBLE_JS at each of COMMON_SIZES (a picture at the sizes `shots` names); back to
        1366x768 afterwards."""
        driver.execute_script("document.getElementById('announce') && (document.getElementById('announce').textContent = '')")
        try:
            for w, h in COMMON_SIZES:
                driver.set_window_size(w, h)
                time.sleep(0.4)
                inner = driver.execute_script("return [window.innerWidth, window.innerHeight]")
                check(inner[0] == w, f"{where}: asked for {w}x{h}, the page is {inner[0]}x{inner[1]}")
                r = driver.execute_script(VISIBLE_JS)
                check(r["checked"] >= min_checked, f"{where} {w}x{h}: only {r['checked']} controls seen")
                check(not r["bad"], f"{where} {w}x{h}: not fully visible: {r['bad']}")
                overflow = driver.execute_script("return document.documentElement.scrollWidth - window.innerWidth")
                check(overflow <= 0, f"{where} {w}x{h}: the page scrolls sideways by {overflow}px")
                if shots and (w, h) in shots:
                    quiet()
                    driver.save_screenshot(f"{args.screenshots}/{shots[(w, h)]}")
        finally:
            driver.set_window_size(1366, 768)
            time.sleep(0.3)

    def publish_fridge(temp):
        subprocess.run(["mosquitto_pub", "-h", "127.0.0.1", "-p", str(args.mqtt_port), "-q", "1",
                        "-t", f"clinic/{args.site}/room/{args.coldchain_room}/environment/env-1",
                        "-m", json.dumps({"temperature_c": temp})], check=True, timeout=10)

    def api(method, path, token, body=None):
        req = urllib.request.Request(args.url + path, method=method, data=json.dumps(body).encode() if body is not None else None,
                                     headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                return r.status, json.loads(r.read() or b"null")
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read() or b"null")

    CC_ITEMS_JS = """
      return Array.prototype.map.call(document.querySelectorAll('#cc-list li.cc-item'), function (li) {
        var f = li.querySelector('form'); return { key: li.dataset.key, cls: li.className, text: li.querySelector('.cc-what').textContent,
          id: f ? f.dataset.excursion : null };
      });"""

    def cc_items():
        return driver.execute_script(CC_ITEMS_JS)

    def open_alarm(temp_text):
        """Waits for the banner's alarm line of the open excursion; returns it."""
        found = {}

        def ready(_):
            for it in cc_items():
                if it["id"] and "cc-alarm" in it["cls"] and f"({temp_text} °C)" in it["text"] and it["text"].endswith("— alarme"):
                    found.update(it)
                    return True
            return False
        WebDriverWait(driver, 30, poll_frequency=0.2).until(ready)
        return found

    def submit_action(exc_id, text):
        form = driver.find_element(By.CSS_SELECTOR, f'form.cc-form[data-excursion="{exc_id}"]')
        area = form.find_element(By.TAG_NAME, "textarea")
        check(area.get_attribute("id") and driver.find_element(By.CSS_SELECTOR, f'label[for="{area.get_attribute("id")}"]').text
              == "Ação tomada", "the textarea is labelled 'Ação tomada'")
        if text:
            area.send_keys(text)
        button = form.find_element(By.TAG_NAME, "button")
        check(button.text == "Registrar ação", f"button text {button.text!r}")
        driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", button)
        button.click()
        return form

    def coldchain_steps():
        name = args.coldchain_name
        step("the fridge warms up: the cold-chain alarm at the top of the page, with its form")
        publish_fridge(9.4)
        first = open_alarm("9,4")
        check(first["text"].startswith(f"{name}: temperatura fora da faixa (9,4 °C) desde "), f"banner line: {first['text']!r}")
        check(by_id("cc-banner").location["y"] < by_id("banner").location["y"], "the cold-chain banner comes first")
        a11y("cold-chain banner")
        all_visible("cold-chain banner", min_checked=12)
        quiet()
        driver.save_screenshot(f"{args.screenshots}/coldchain-banner.png")

        step("an empty action is refused in the page; a written one is recorded and the alarm leaves the banner")
        submit_action(first["id"], "")
        wait.until(lambda d: "Descreva a ação tomada" in by_id(f"cc-err-{first['id']}").text)
        submit_action(first["id"], "Porta da geladeira fechada; vacinas conferidas e mantidas em uso.")
        wait.until(lambda d: "Ação registrada por " + args.user in by_id("cc-notice").text)
        wait.until(lambda d: not any(it["id"] == first["id"] for it in cc_items()))
        time.sleep(2.5)  # a poll later, still gone
        check(not any(it["id"] == first["id"] for it in cc_items()), "the acknowledged excursion came back")
        publish_fridge(5.0)  # back inside the band: the excursion ends

        if args.second_user:
            step("a second excursion, acknowledged by someone else while this page has a draft: the 409 says who")
            token = None
            st, body = 0, None
            req = urllib.request.Request(args.url + "/api/v1/session", method="POST",
                                         data=json.dumps({"name": args.second_user, "password": args.second_password}).encode(),
                                         headers={"Content-Type": "application/json"})
            with urllib.request.urlopen(req, timeout=30) as r:
                token = json.loads(r.read())["token"]
            time.sleep(1)
            publish_fridge(1.0)
            second = open_alarm("1,0")
            check(second["id"] != first["id"], "a new excursion")
            form = driver.find_element(By.CSS_SELECTOR, f'form.cc-form[data-excursion="{second["id"]}"]')
            form.find_element(By.TAG_NAME, "textarea").send_keys("Termostato ajustado")
            st, body = api("POST", f"/api/v1/coldchain/excursions/{second['id']}/ack", token, {"action": "Termostato ajustado pela enfermagem."})
            check(st == 201, f"ack by {args.second_user}: {st} {body}")
            time.sleep(2.5)  # the page polls meanwhile: the form being written stays
            check(any(it["id"] == second["id"] for it in cc_items()), "the form with a draft was taken away")
            submit_action(second["id"], "")
            wait.until(lambda d: f"Esta excursão já foi registrada por {args.second_user}." in by_id("cc-notice").text)
            wait.until(lambda d: not any(it["id"] == second["id"] for it in cc_items()))
            st, _ = api("POST", f"/api/v1/coldchain/excursions/{second['id']}/ack", token, {"action": "de novo"})
            check(st == 409, f"a second ack through the API: {st}")
            publish_fridge(5.0)

        step("the room card links to the monthly chart")
        link = driver.find_element(By.CSS_SELECTOR, f'#room-list li[data-room="{args.coldchain_room}"] .room-links a')
        check(link.text == "Mapa de temperatura", link.text)
        if args.chart_fixture:
            # Until the daemon has GET /api/v1/coldchain/{room}/chart: the page gets this answer.
            fixture = open(args.chart_fixture).read()
            driver.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": """
              (function () { var real = window.fetch.bind(window), body = %s;
                window.fetch = function (p, o) {
                  if (/^\/api\/v1\/coldchain\/[^/]+\/chart/.test(String(p)))
                    return Promise.resolve(new Response(body, { status: 200, headers: { 'Content-Type': 'application/json' } }));
                  return real(p, o);
                };
              })();""" % json.dumps(fixture)})
        driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", link)
        link.click()
        wait.until(lambda d: d.find_elements(By.ID, "chart") and by_id("chart").get_attribute("data-loaded") == "true")
        check(f"room={args.coldchain_room}" in driver.current_url, driver.current_url)
        if args.chart_fixture:
            # The fixture is a 31-day month: the chart must print on one A4 page.
            driver.get(args.url + f"/coldchain?room={args.coldchain_room}&month={json.loads(fixture)['month']}")
            wait.until(lambda d: d.find_elements(By.ID, "chart") and by_id("chart").get_attribute("data-loaded") == "true")
        chart_checks()

    def chart_checks():
        step("the chart: one row per day, 'sem leituras' across empty days, decimal commas, CSV and print")
        rows = driver.execute_script("""
          return Array.prototype.map.call(document.querySelectorAll('#chart-rows tr'), function (tr) {
            return { date: tr.dataset.date, cells: tr.cells.length, text: tr.innerText, cls: tr.className }; });""")
        month = by_id("chart").get_attribute("data-month")
        y, m = int(month[:4]), int(month[5:])
        days = calendar.monthrange(y, m)[1]
        check(len(rows) == days and [r["date"] for r in rows] == [f"{month}-{d:02d}" for d in range(1, days + 1)],
              f"{len(rows)} rows for {month}")
        today = by_id("chart").get_attribute("data-today")
        past = [r for r in rows if r["date"] <= today]
        empty = [r for r in past if "c-empty" in r["cls"]]
        for r in empty:
            check("sem leituras" in r["text"], f"an empty day says so: {r}")
        filled = [r for r in past if "c-empty" not in r["cls"]]
        check(filled, "some day has readings")
        check(all(not re.search(r"\d\.\d", r["text"]) for r in past), "no decimal point on the chart")
        check(all(re.search(r"\d,\d", r["text"]) for r in filled), "decimal commas on days with readings")
        check(all(r["cells"] == 14 for r in filled), "14 cells on a day with readings")
        csv = by_id("chart-csv")
        check(csv.get_attribute("href").endswith(f"/api/v1/coldchain/{args.coldchain_room}/chart?month={month}&format=csv"),
              csv.get_attribute("href"))
        check(by_id("chart-print").text == "Imprimir", "print button")
        a11y("chart page", min_texts=40)
        all_visible("chart page", min_checked=4)
        quiet()
        driver.save_screenshot(f"{args.screenshots}/coldchain-chart.png")
        pdf = base64.b64decode(driver.execute_cdp_cmd("Page.printToPDF", {"preferCSSPageSize": True, "printBackground": True})["data"])
        open(f"{args.screenshots}/coldchain-chart.pdf", "wb").write(pdf)
        pages = len(re.findall(rb"/Type\s*/Page(?![a-zA-Z])", pdf))
        counts = [int(c) for c in re.findall(rb"/Type\s*/Pages\b[^>]*?/Count (\d+)", pdf)] or \
            [int(c) for c in re.findall(rb"/Count (\d+)", pdf)]
        check(pages == 1 and counts and max(counts) == 1, f"the month prints on {pages} page(s) (/Count {counts}), not one A4 page")
        print(f"[browser] the chart of {month} ({days} days) printed on 1 A4 page ({len(pdf)} bytes)", flush=True)
        driver.get(args.url + "/")
        wait.until(lambda d: d.find_elements(By.ID, "agenda-rows"))

    try:
        step("the login page (not signed in)")
        driver.get(args.url + "/")
        wait.until(lambda d: d.find_elements(By.ID, "login-form"))
        check(driver.find_element(By.TAG_NAME, "html").get_attribute("lang") == "pt-BR", "page language pt-BR")
        a11y("login page", min_texts=5)

        step("a wrong password is refused with a message")
        by_id("login-name").send_keys(args.user)
        by_id("login-password").send_keys("senha-errada-123")
        by_id("login-password").send_keys(Keys.ENTER)
        wait.until(lambda d: by_id("login-error").text.strip() != "")
        check("incorretos" in by_id("login-error").text, f"login error text: {by_id('login-error').text!r}")

        step("log in with the keyboard")
        by_id("login-password").clear()
        by_id("login-password").send_keys(args.password + Keys.ENTER)
        wait.until(lambda d: d.find_elements(By.ID, "agenda-rows"))
        check(by_id("staff-name").text == args.user, "the signed-in name is shown")

        step("the seeded agenda, in time order")
        expected = [n for n in args.expect_patients.split(",") if n]
        wait.until(lambda d: all(row_for(n) is not None for n in expected))
        names = visible_names()
        check(names == expected, f"agenda rows {names} != {expected}")
        starts = [r["start"] for r in rows()]
        check(starts == sorted(starts), f"times not in order: {starts}")
        check("Sala" in row_for(args.reception_patient)["text"], "room shown")

        step("the cloud banner says online with the backlog")
        wait.until(lambda d: by_id("banner").get_attribute("data-cloud-state") == "online")
        check("Nuvem conectada" in by_id("banner").text, f"banner: {by_id('banner').text!r}")

        step("search by name (accents ignored) and by phone")
        search = by_id("agenda-search")
        driver.find_element(By.TAG_NAME, "body").send_keys("/")  # the shortcut focuses the search
        check(driver.switch_to.active_element == search, "'/' focuses the search")
        if args.name_query:
            search.send_keys(args.name_query)
            wait.until(lambda d: visible_names() == [args.name_expect])
            search.send_keys(Keys.ESCAPE)
            wait.until(lambda d: len(visible_names()) == len(expected))
        if args.search_phone:
            search.send_keys(args.search_phone)
            wait.until(lambda d: visible_names() == [args.kiosk_patient])
            search.send_keys(Keys.ESCAPE)
            wait.until(lambda d: len(visible_names()) == len(expected))
        search.send_keys("ninguém-com-esse-nome")
        wait.until(lambda d: by_id("agenda-nomatch").is_displayed())
        search.send_keys(Keys.ESCAPE)

        step(f"check {args.reception_patient} in with the keyboard")
        appt = row_for(args.reception_patient)["id"]
        button = driver.find_element(By.CSS_SELECTOR, f'#appt-{appt} button[data-checkin]')
        check(args.reception_patient in button.get_attribute("aria-label"), "the button names the patient")
        appt_id = button.get_attribute("data-checkin")
        driver.execute_script("arguments[0].focus()", button)
        outline = driver.execute_script("return getComputedStyle(document.activeElement).outlineStyle")
        button.send_keys(Keys.ENTER)
        wait.until(lambda d: "Recepção" in (status_of(args.reception_patient) or ""))
        wait.until(lambda d: "Check-in de " + args.reception_patient in by_id("announce").text)
        check(not row_for(args.reception_patient)["button"], "no second check-in button")
        focus_key = driver.execute_script("return document.activeElement && document.activeElement.dataset.focusKey")
        check(focus_key == "status:" + appt_id, f"focus moves to the row's status after check-in, not lost (got {focus_key!r}, outline {outline})")

        step(f"a kiosk check-in of {args.kiosk_patient} appears without reload")
        driver.execute_script("window.__noReload = 'still-here'")
        check(status_of(args.kiosk_patient) and "Chegou" not in status_of(args.kiosk_patient), "not arrived before the scan")
        scan = json.dumps({"scan_id": f"browser-{int(time.time())}", "qr": args.kiosk_qr})
        subprocess.run(["mosquitto_pub", "-h", "127.0.0.1", "-p", str(args.mqtt_port), "-q", "1",
                        "-t", f"clinic/{args.site}/kiosk/k1/scan", "-m", scan], check=True, timeout=10)
        WebDriverWait(driver, 10, poll_frequency=0.1).until(lambda d: "Quiosque" in (status_of(args.kiosk_patient) or ""))
        check(driver.execute_script("return window.__noReload") == "still-here", "the page was reloaded")
        check("Chegou às" in status_of(args.kiosk_patient), f"status: {status_of(args.kiosk_patient)!r}")
        a11y("console 1366x768")

        step("every button and banner fully visible at 1280x800, 1366x768, 1024x768 and 390x844")
        all_visible("console", shots={(1280, 800): "agenda-1280.png", (390, 844): "phone.png"})

        step("the server's HTML and the script's redraw are the same markup")
        twins = driver.execute_async_script(TWINS_JS)
        for part in ("agenda-rows", "room-list", "agenda-summary", "agenda-day"):
            check(twins[part][0] == twins[part][1], f"{part} differs:\nserver: {twins[part][0][:1500]}\nscript: {twins[part][1][:1500]}")

        step("another day and back, with the keyboard")
        today_label = by_id("agenda-day").text
        check(today_label.endswith("(hoje)"), f"day label: {today_label!r}")
        driver.execute_script("document.getElementById('next-day').focus()")
        driver.switch_to.active_element.send_keys(Keys.ENTER)
        wait.until(lambda d: by_id("agenda-empty").is_displayed() and not rows())
        check(not by_id("agenda-day").text.endswith("(hoje)"), "tomorrow is not today")
        driver.execute_script("document.getElementById('today').focus()")
        driver.switch_to.active_element.send_keys(Keys.ENTER)
        wait.until(lambda d: len(rows()) == len(expected) and by_id("agenda-day").text == today_label)

        step("screenshot of the agenda (1366x768)")
        quiet()
        driver.save_screenshot(f"{args.screenshots}/agenda.png")

        step("the rooms board: fridge temperature, occupancy, an alert")
        fridge = driver.find_element(By.CSS_SELECTOR, '#room-list li[data-room="geladeira-vacinas"]')
        check("Geladeira de vacinas" in fridge.text, fridge.text)
        check("°C" in fridge.find_element(By.CSS_SELECTOR, '[data-metric="temperature_c"]').text, fridge.text)
        check("Normal" in fridge.text, "the fridge is fine: " + fridge.text)
        alerts = driver.find_elements(By.CSS_SELECTOR, "#room-list li.room-alert")
        check(alerts and "fora do limite" in alerts[0].text, "an alert is shown")
        check(any("Ocupada" in li.text for li in driver.find_elements(By.CSS_SELECTOR, "#room-list li.room")), "an occupied room")
        driver.set_window_size(1366, 1400)  # the whole board in one picture
        quiet()
        by_id("rooms").screenshot(f"{args.screenshots}/rooms.png")
        driver.set_window_size(1366, 768)

        if args.coldchain_room:
            coldchain_steps()

        step("a tablet (820x1180): one column, cards, no sideways scroll")
        driver.set_window_size(820, 1180)
        time.sleep(0.4)
        a11y("tablet")
        quiet()
        driver.save_screenshot(f"{args.screenshots}/tablet.png")
        driver.set_window_size(1366, 768)

        step("the cloud goes down: the offline banner with the backlog")
        req = urllib.request.Request(args.stub_url + "/_stub/faults", data=b'{"mode":"down"}', method="POST",
                                     headers={"Content-Type": "application/json"})
        urllib.request.urlopen(req, timeout=5).read()
        # Something to send, so the appliance tries (and fails) to reach the cloud.
        subprocess.run(["mosquitto_pub", "-h", "127.0.0.1", "-p", str(args.mqtt_port), "-q", "1",
                        "-t", f"clinic/{args.site}/room/geladeira-vacinas/environment/env-1", "-m", '{"temperature_c": 4.7}'],
                       check=True, timeout=10)
        WebDriverWait(driver, 30, poll_frequency=0.2).until(
            lambda d: by_id("banner").get_attribute("data-cloud-state") in ("degraded", "offline"))
        banner = by_id("banner").text
        check("Sem conexão com a nuvem" in banner, f"banner: {banner!r}")
        check("aguardando envio" in banner and "O check-in continua funcionando" in banner, f"banner: {banner!r}")
        check("banner-offline" in by_id("banner").get_attribute("class"), "offline style")
        a11y("offline banner")
        quiet()
        driver.save_screenshot(f"{args.screenshots}/offline.png")

        step("log out: back to the login page")
        by_id("logout").click()
        wait.until(lambda d: d.find_elements(By.ID, "login-form"))
        driver.get(args.url + "/")
        wait.until(lambda d: d.find_elements(By.ID, "login-form"))
        print("[browser] all steps passed", flush=True)
        return 0
    except Exception as e:  # noqa: BLE001 - any failure: diagnostics, exit 1
        print(f"[browser] FAILED at step {STEP[0]}: {type(e).__name__}: {e}", flush=True)
        try:
            driver.save_screenshot("/tmp/console-browser-failure.png")
            print("[browser] screenshot: /tmp/console-browser-failure.png", flush=True)
            print("[browser] page text:\n" + driver.find_element(By.TAG_NAME, "body").text[:3000], flush=True)
            for entry in driver.get_log("browser")[-20:]:
                print(f"[browser] console: {entry}", flush=True)
        except Exception as inner:  # noqa: BLE001
            print(f"[browser] (no diagnostics: {inner})", flush=True)
        return 1
    finally:
        driver.quit()


if __name__ == "__main__":
    sys.exit(main())
