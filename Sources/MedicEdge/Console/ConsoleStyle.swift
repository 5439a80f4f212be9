/// The console's stylesheet, served from the binary at `/assets/console.css`.
/// Colours are chosen for WCAG AA (text ≥ 4.5:1 on its background; the browser test checks
/// every visible text). Layout: two columns from 1200 px (agenda | rooms), one column
/// below; the agenda table becomes cards under 900 px (tablets in portrait, phones).
enum ConsoleAssets {
    static let css = #"""
:root {
  --bg: #f3f5f8; --card: #ffffff; --text: #1b1f24; --muted: #4a5360; --line: #d5dbe3;
  --primary: #0b57a4; --primary-dark: #08457f; --focus: #1a1aa6;
  --ok-bg: #e2f3e7; --ok-text: #135c2c; --wait-bg: #e6edf7; --wait-text: #1d3f6e;
  --late-bg: #fff1d6; --late-text: #6b4500; --bad-bg: #fde8e8; --bad-text: #8f1a1a;
  --off-bg: #9b1c1c; --local-bg: #3f4a57; --on-bg: #e2f3e7;
}
* { box-sizing: border-box; }
html { font-size: 16px; }
body { margin: 0; background: var(--bg); color: var(--text);
  font-family: system-ui, -apple-system, "Segoe UI", Roboto, "Noto Sans", "DejaVu Sans", Arial, sans-serif; line-height: 1.4; }
h1, h2, h3 { margin: 0; line-height: 1.2; }
h1 { font-size: 1.35rem; } h2 { font-size: 1.2rem; } h3 { font-size: 1rem; }
.mono { font-family: ui-monospace, "DejaVu Sans Mono", monospace; }
.muted { color: var(--muted); } .small { font-size: .875rem; }
.sr-only { position: absolute !important; width: 1px; height: 1px; padding: 0; margin: -1px; overflow: hidden;
  clip: rect(0 0 0 0); white-space: nowrap; border: 0; }
[hidden] { display: none !important; }
:focus-visible { outline: 3px solid var(--focus); outline-offset: 2px; }
.skip { position: absolute; left: -999px; top: 0; background: var(--card); color: var(--primary); padding: .5rem 1rem; z-index: 10; }
.skip:focus { left: .5rem; top: .5rem; }

.btn { font: inherit; min-height: 44px; padding: .5rem 1rem; border-radius: 8px; border: 2px solid transparent; cursor: pointer; }
.btn-primary { background: var(--primary); color: #fff; font-weight: 600; }
.btn-primary:hover { background: var(--primary-dark); }
.btn-primary:disabled, .btn-primary[aria-disabled=true] { background: #5a6472; cursor: progress; }
.btn-quiet { background: var(--card); color: var(--primary); border-color: var(--line); }
.btn-quiet:hover { border-color: var(--primary); }
.btn-block { width: 100%; }
input[type=text], input[type=password], input[type=search], input[type=date] {
  font: inherit; color: var(--text); background: #fff; min-height: 44px; padding: .4rem .6rem;
  border: 2px solid #6b7480; border-radius: 8px; }
input::placeholder { color: #5d6671; }

/* login */
.login-page { display: flex; min-height: 100vh; align-items: center; justify-content: center; padding: 1rem; }
.login-card { background: var(--card); border: 1px solid var(--line); border-radius: 12px; padding: 2rem; width: 100%; max-width: 380px;
  box-shadow: 0 2px 12px rgba(0,0,0,.06); }
.login-card h1 { font-size: 1.6rem; margin-bottom: .25rem; }
.field { display: flex; flex-direction: column; gap: .3rem; margin: 1rem 0; }
.field label { font-weight: 600; }
.form-error { color: var(--bad-text); min-height: 1.4em; margin: .5rem 0; font-weight: 600; }

/* console */
.topbar { display: flex; flex-wrap: wrap; align-items: center; gap: .75rem 1.5rem; padding: .6rem 1.25rem; background: var(--card);
  border-bottom: 1px solid var(--line); }
.brand { display: flex; align-items: baseline; gap: .6rem; }
.site { color: var(--muted); font-size: .9rem; }
.sections { display: flex; gap: 1rem; }
.sections a { color: var(--primary); font-weight: 600; text-decoration: none; padding: .5rem .25rem; }
.sections a:hover { text-decoration: underline; }
.who { margin-left: auto; display: flex; align-items: center; gap: .75rem; }

.banner { padding: .6rem 1.25rem; font-size: 1rem; display: flex; flex-wrap: wrap; gap: .25rem .6rem; align-items: baseline; }
.banner-online { background: var(--on-bg); color: var(--ok-text); }
.banner-offline { background: var(--off-bg); color: #fff; }
.banner-local { background: var(--local-bg); color: #fff; }
.banner strong { font-size: 1.05rem; }

.toast { position: fixed; right: 1rem; bottom: 1rem; max-width: 420px; background: #1b1f24; color: #fff; padding: .75rem 1rem;
  border-radius: 8px; box-shadow: 0 4px 16px rgba(0,0,0,.2); z-index: 5; }
.toast:empty { display: none; }
.toast.toast-error { background: var(--off-bg); }

.layout { display: grid; grid-template-columns: 1fr; gap: 1rem; padding: 1rem 1.25rem; }
@media (min-width: 1200px) { .layout { grid-template-columns: minmax(0, 1fr) 330px; align-items: start; } }
.panel { background: var(--card); border: 1px solid var(--line); border-radius: 12px; padding: 1rem; min-width: 0; }
.panel:focus { outline: none; }
.panel-head { display: flex; flex-wrap: wrap; align-items: center; justify-content: space-between; gap: .75rem; margin-bottom: .5rem; }
.controls { display: flex; flex-wrap: wrap; gap: .75rem; align-items: end; }
.day-picker { display: flex; gap: .35rem; align-items: center; }
.day-picker .btn { min-width: 44px; padding: .5rem .7rem; }
.search { display: flex; flex-direction: column; gap: .2rem; }
.search label { font-size: .875rem; font-weight: 600; }
.search input { width: 13rem; }
.summary { margin: .25rem 0 .75rem; color: var(--muted); }
.day-label { margin: .2rem 0 0; font-weight: 600; font-size: .95rem; }
.empty { color: var(--muted); padding: 1rem 0; margin: 0; }

table.agenda { width: 100%; border-collapse: collapse; }
.agenda th { text-align: left; font-size: .85rem; color: var(--muted); font-weight: 600; padding: .4rem .5rem; border-bottom: 2px solid var(--line); }
.agenda td { padding: .5rem; border-bottom: 1px solid var(--line); vertical-align: middle; }
.agenda .time, .agenda .col-room { white-space: nowrap; font-variant-numeric: tabular-nums; }
.t-start { font-weight: 700; } .t-end { color: var(--muted); font-size: .875rem; }
.p-name { font-weight: 600; display: block; } .p-phone { color: var(--muted); font-size: .875rem; white-space: nowrap; }
.agenda .action { text-align: right; width: 1%; white-space: nowrap; }
.agenda .status:focus { outline: 3px solid var(--focus); }
tr.st-cancelled td { color: var(--muted); }
tr.st-cancelled .p-name { text-decoration: line-through; }
tr.st-arrived { background: #f6fbf7; }
.badge { display: inline-block; padding: .2rem .55rem; border-radius: 999px; font-size: .85rem; font-weight: 600; white-space: nowrap; }
.badge-arrived, .badge-ok { background: var(--ok-bg); color: var(--ok-text); }
.badge-waiting { background: var(--wait-bg); color: var(--wait-text); }
.badge-late { background: var(--late-bg); color: var(--late-text); }
.badge-cancelled { background: #eceff3; color: #3d4550; }
.badge-alert { background: var(--bad-bg); color: var(--bad-text); }

.rooms { list-style: none; margin: 0; padding: 0; display: grid; gap: .75rem; grid-template-columns: repeat(auto-fill, minmax(250px, 1fr)); }
@media (min-width: 1200px) { .rooms { grid-template-columns: 1fr; } }
.room { border: 1px solid var(--line); border-radius: 10px; padding: .75rem; }
.room-alert { border: 2px solid var(--bad-text); background: #fff8f8; }
.room-head { display: flex; justify-content: space-between; align-items: center; gap: .5rem; }
.occupancy { margin: .35rem 0 0; font-weight: 600; }
.occ-busy { color: var(--late-text); } .occ-free { color: var(--ok-text); }
.readings { margin: .5rem 0 0; display: grid; gap: .2rem; }
.reading { display: flex; justify-content: space-between; gap: .5rem; }
.reading dt { color: var(--muted); } .reading dd { margin: 0; text-align: right; }
.reading .value { font-weight: 700; font-size: 1.1rem; font-variant-numeric: tabular-nums; }
.reading-bad .value { color: var(--bad-text); }
.range { color: var(--muted); font-size: .85rem; }
.updated { margin: .4rem 0 0; font-size: .85rem; color: var(--muted); }
.updated.stale { color: var(--late-text); font-weight: 600; }
.alerts { margin: .5rem 0 0; padding-left: 1.1rem; color: var(--bad-text); font-weight: 600; font-size: .9rem; }
.foot { padding: 0 1.25rem 1rem; }

/* tablets in portrait and phones: the agenda as cards */
@media (max-width: 899px) {
  .topbar { padding: .5rem .75rem; } .layout { padding: .75rem; }
  .panel-head { flex-direction: column; align-items: stretch; }
  .search input { width: 100%; } .search { flex: 1 1 100%; }
  table.agenda, .agenda tbody, .agenda tr, .agenda td { display: block; width: 100%; }
  .agenda thead { position: absolute; width: 1px; height: 1px; overflow: hidden; clip: rect(0 0 0 0); }
  .agenda tr { border: 1px solid var(--line); border-radius: 10px; margin-bottom: .6rem; padding: .4rem .6rem; }
  .agenda td { border: 0; padding: .2rem 0; display: flex; gap: .75rem; }
  .agenda td::before { content: attr(data-label); color: var(--muted); font-size: .85rem; min-width: 6.5rem; }
  .agenda td.action { text-align: left; width: 100%; } .agenda td.action::before { content: none; }
  .agenda td.action .btn { width: 100%; }
}
"""#
}
