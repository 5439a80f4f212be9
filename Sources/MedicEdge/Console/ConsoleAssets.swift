/// The console's static files, written as real files in `Console/Assets/` and embedded in the
/// binary at build time (SwiftPM `.embedInCode`, Package.swift): no file to install, nothing
/// fetched from the internet (it may be down).
///
/// - `console.css` (`/assets/console.css`): colours chosen for WCAG AA (text ≥ 4.5:1 on its
///   background; the browser test checks every visible text). Layout: two columns from
///   1200 px (agenda | rooms), one column below; the agenda table is sized by its card's
///   width (a container query): under 940 px its times and status badges wrap, under 800 px
///   it becomes cards (tablets in portrait, phones, the 1,200 px two-column squeeze).
/// - `console.js` (`/assets/console.js`): polls the JSON API every 2 s and redraws what
///   changed with the same markup as `ConsolePage` (keep the two in step), keeping keyboard
///   focus; search, day navigation, check-in, logout.
/// - `login.js` (`/assets/login.js`): posts the JSON login, then loads the page again (the
///   console, or the cold-chain chart the login page was served for).
/// - `coldchain.js` (`/assets/coldchain.js`): on every console page, the cold-chain banner
///   (excursions and silent sensors, with the acknowledgement form); on `/coldchain`, the
///   monthly chart's rows (`ColdChainPage`).
enum ConsoleAssets {
    static let css = String(decoding: PackageResources.console_css, as: UTF8.self)
    static let js = String(decoding: PackageResources.console_js, as: UTF8.self)
    static let loginJS = String(decoding: PackageResources.login_js, as: UTF8.self)
    static let coldChainJS = String(decoding: PackageResources.coldchain_js, as: UTF8.self)
}
