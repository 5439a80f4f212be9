import Crypto
import EdgeCore
import EdgeStore
import Foundation
import Synchronization

/// Staff names: what `staff add` accepts and what login looks up (case-insensitive: stored
/// lower-case).
enum StaffName {
    static func normalized(_ raw: String) -> String? {
        let n = raw.trimmingCharacters(in: .whitespaces).lowercased()
        guard (1...64).contains(n.utf8.count),
            n.utf8.allSatisfy({ ($0 >= 97 && $0 <= 122) || ($0 >= 48 && $0 <= 57) || $0 == 46 || $0 == 95 || $0 == 45 || $0 == 64 })
        else { return nil }
        return n
    }
    static let rule = "1-64 characters among a-z, 0-9, '.', '_', '-', '@' (case-insensitive)"
}

/// Login throttling (CONTRACT §4): after 5 failed logins for one name, or from one address,
/// within 5 minutes, further attempts for that name or from that address get 429 with
/// `Retry-After` until the oldest of those failures is 5 minutes old. A sliding window,
/// kept in memory (a restart forgets it). Each attempt counts when it starts, before its
/// password is checked; a success (or an attempt refused before any check) is taken back.
/// Answers refused with 429 do not count, and a success does not wipe earlier failures.
final class LoginThrottle: Sendable {
    static let maxFailures = 5
    static let windowMs: Int64 = 5 * 60_000
    static let maxKeys = 20_000

    let clock: any EdgeClock
    private let failures = Mutex<[String: [Int64]]>([:])

    init(clock: any EdgeClock) { self.clock = clock }

    private static func keys(name: String, address: String) -> [String] { ["n:" + name, "a:" + address] }

    /// Seconds to wait when this name or address is locked out, else nil.
    func retryAfter(name: String, address: String) -> Int? {
        let now = clock.nowMs()
        return failures.withLock { LoginThrottle.wait($0, name: name, address: address, now: now) }
    }

    private static func wait(_ map: [String: [Int64]], name: String, address: String, now: Int64) -> Int? {
        var wait: Int64 = 0
        for k in LoginThrottle.keys(name: name, address: address) {
            let recent = (map[k] ?? []).filter { now - $0 < LoginThrottle.windowMs }
            if recent.count >= LoginThrottle.maxFailures {
                // Unlocked when all but four of these are out of the window.
                let unlockAt = recent[recent.count - LoginThrottle.maxFailures] + LoginThrottle.windowMs
                wait = max(wait, unlockAt - now)
            }
        }
        return wait > 0 ? Int((wait + 999) / 1000) : nil
    }

    /// A login attempt is counted before its password is checked (CONTRACT §4), so parallel
    /// guesses cannot all pass a throttle that is only told of failures afterwards. Returns
    /// the seconds to wait when this name or address is locked out (nothing counted), else
    /// the attempt's mark: `release` it when the attempt turns out not to be a failed guess
    /// (a success, or no password check at all).
    enum Attempt: Equatable { case locked(seconds: Int), counted(mark: Int64) }
    func attempt(name: String, address: String) -> Attempt {
        let now = clock.nowMs()
        return failures.withLock { map -> Attempt in
            if let wait = LoginThrottle.wait(map, name: name, address: address, now: now) { return .locked(seconds: wait) }
            LoginThrottle.add(&map, name: name, address: address, now: now)
            return .counted(mark: now)
        }
    }
    /// Takes back an attempt counted by `attempt`.
    func release(name: String, address: String, mark: Int64) {
        failures.withLock { map in
            for k in LoginThrottle.keys(name: name, address: address) {
                guard var list = map[k], let i = list.lastIndex(of: mark) else { continue }
                list.remove(at: i)
                map[k] = list.isEmpty ? nil : list
            }
        }
    }

    func recordFailure(name: String, address: String) {
        let now = clock.nowMs()
        failures.withLock { LoginThrottle.add(&$0, name: name, address: address, now: now) }
    }

    private static func add(_ map: inout [String: [Int64]], name: String, address: String, now: Int64) {
        for k in LoginThrottle.keys(name: name, address: address) {
            var list = (map[k] ?? []).filter { now - $0 < LoginThrottle.windowMs }
            list.append(now)
            map[k] = Array(list.suffix(LoginThrottle.maxFailures * 2))
        }
        if map.count > LoginThrottle.maxKeys {
            map = map.filter { $0.value.contains { now - $0 < LoginThrottle.windowMs } }
            if map.count > LoginThrottle.maxKeys {
                // Under a flood of invented names: forget the oldest names, never the addresses.
                let victims = map.filter { $0.key.hasPrefix("n:") }.sorted { ($0.value.last ?? 0) < ($1.value.last ?? 0) }
                    .prefix(map.count - LoginThrottle.maxKeys)
                for v in victims { map[v.key] = nil }
            }
        }
    }
}

/// At most `limit` password checks run at once (CONTRACT §4: 2), so unauthenticated logins
/// cannot pin both cores with PBKDF2; a login beyond it is answered 503 with `Retry-After`.
final class HashGate: Sendable {
    let limit: Int
    private let running = Mutex<Int>(0)
    init(limit: Int = 2) { self.limit = limit }
    func tryEnter() -> Bool {
        running.withLock { n in
            guard n < limit else { return false }; n += 1; return true
        }
    }
    func leave() { running.withLock { $0 = max(0, $0 - 1) } }
    var inUse: Int { running.withLock { $0 } }
}

/// Staff accounts and sessions in the database. Tokens are 32 random bytes (base64url);
/// only their SHA-256 is stored. Sessions end 12 hours after login (not extended by use),
/// at logout, or when the account is removed.
struct StaffAccounts: Sendable {
    static let sessionMs: Int64 = 12 * 3600_000
    let db: AppDatabase
    let clock: any EdgeClock

    struct Session: Sendable, Equatable {
        var name: String
        var tokenHash: String
        var expiresMs: Int64
    }

    enum AddError: Error, Equatable { case badName, exists }

    /// Creates (or, with `replace`, re-keys) an account; replacing ends its sessions.
    func add(name raw: String, password: String, replace: Bool = false, iterations: Int = StaffPassword.defaultIterations) throws {
        guard let name = StaffName.normalized(raw) else { throw AddError.badName }
        try StaffPassword.check(password)
        let stored = StaffPassword.make(password, iterations: iterations)
        let now = clock.nowMs()
        try db.write { db in
            let exists = try db.staffAccountExists(name)
            if exists && !replace { throw AddError.exists }
            try db.saveStaffAccount(name: name, salt: stored.salt, hash: stored.hash, iterations: stored.iterations, nowMs: now)
            try db.endSessions(of: name)
            try StaffAccounts.audit(db, name: name, action: exists ? "password_replaced" : "account_created", target: nil, nowMs: now)
        }
    }

    /// Removes an account and ends its sessions; false when there was none.
    func remove(name raw: String) throws -> Bool {
        guard let name = StaffName.normalized(raw) else { return false }
        let now = clock.nowMs()
        return try db.write { db in
            guard try db.deleteStaffAccount(name) else { return false }
            try db.endSessions(of: name)
            try StaffAccounts.audit(db, name: name, action: "account_removed", target: nil, nowMs: now)
            return true
        }
    }

    func list() throws -> [(name: String, createdMs: Int64, iterations: Int, sessions: Int)] {
        let now = clock.nowMs()
        return try db.staffAccounts(nowMs: now).map { ($0.name, $0.createdMs, $0.iterations, $0.liveSessions) }
    }

    func stored(name: String) throws -> StaffPassword.Stored? {
        try db.staffAccount(named: name).map { StaffPassword.Stored(salt: $0.salt, hash: $0.hash, iterations: $0.iterations) }
    }

    /// Checks a name and password (the slow hash runs off the caller's thread). Returns the
    /// normalized name on success. Unknown names cost the same time as known ones.
    func verify(name raw: String, password: String) async throws -> String? {
        guard let name = StaffName.normalized(raw), password.utf8.count <= StaffPassword.maximumBytes else {
            await StaffAccounts.offload { StaffPassword.dummyVerify(password.count > 1024 ? "" : password) }
            return nil
        }
        let stored = try stored(name: name)
        let ok = await StaffAccounts.offload { () -> Bool in
            guard let stored else { StaffPassword.dummyVerify(password); return false }
            return StaffPassword.verify(password, against: stored)
        }
        return ok ? name : nil
    }

    /// Starts a session: returns the token (shown once, never stored).
    func startSession(name: String) throws -> (token: String, expiresMs: Int64) {
        var rng = SystemRandomNumberGenerator()
        let bytes = (0..<32).map { _ in UInt8.random(in: 0...255, using: &rng) }
        let token = StaffAccounts.base64url(bytes)
        let now = clock.nowMs()
        let expires = now + StaffAccounts.sessionMs
        try db.write { db in
            try db.startSession(tokenHash: StaffAccounts.tokenHash(token), name: name, expiresMs: expires, nowMs: now)
            try StaffAccounts.audit(db, name: name, action: "login", target: nil, nowMs: now)
        }
        return (token, expires)
    }

    /// The live session for a token, if any (expired, revoked or malformed: nil).
    func session(token: String) throws -> Session? {
        guard (16...128).contains(token.utf8.count) else { return nil }
        let h = StaffAccounts.tokenHash(token)
        let now = clock.nowMs()
        return try db.liveSession(tokenHash: h, nowMs: now).map { Session(name: $0.name, tokenHash: h, expiresMs: $0.expiresMs) }
    }

    func endSession(_ s: Session) throws {
        let now = clock.nowMs()
        try db.write { db in
            try db.endSession(tokenHash: s.tokenHash)
            try StaffAccounts.audit(db, name: s.name, action: "logout", target: nil, nowMs: now)
        }
    }

    static func audit(_ db: StoreTransaction, name: String, action: String, target: String?, nowMs: Int64) throws {
        try db.audit(name: name, action: action, target: target, nowMs: nowMs)
    }

    static func tokenHash(_ token: String) -> String {
        Hex.sha256(token)
    }

    static func base64url(_ bytes: [UInt8]) -> String {
        Data(bytes).base64EncodedString().replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
            .replacingOccurrences(of: "=", with: "")
    }

    /// Runs CPU-heavy work (the password hash) on a Dispatch thread, not on the cooperative
    /// pool or an event loop.
    static func offload<T: Sendable>(_ work: @escaping @Sendable () -> T) async -> T {
        await withCheckedContinuation { c in
            DispatchQueue.global(qos: .userInitiated).async { c.resume(returning: work()) }
        }
    }
}
