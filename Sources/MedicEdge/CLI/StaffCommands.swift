import ArgumentParser
import EdgeCore
import Foundation

/// `medic-edge staff {add,list,remove}`: reception accounts (CONTRACT §5). Safe while the
/// daemon runs (same SQLite file, WAL).
struct Staff: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Reception staff accounts (the console at http://…/ and the staff API).",
        subcommands: [Add.self, List.self, Remove.self])

    struct Add: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Create an account; the password is read from standard input (one line, at least 8 characters).",
            discussion: """
                Example: printf '%s\\n' "$PASSWORD" | medic-edge staff add ana
                On a terminal the password is asked twice, without echo. It is stored as a salted \
                PBKDF2-HMAC-SHA256 hash (\(StaffPassword.defaultIterations) iterations), never as text.
                """)
        @OptionGroup var options: ConfigOption
        @Argument(help: "Login name: \(StaffName.rule).") var name: String
        @Flag(help: "Set a new password for an existing account (its open sessions end).") var replace = false

        func run() async throws {
            guard let normalized = StaffName.normalized(name) else {
                throw ValidationError("bad name \"\(name)\": use \(StaffName.rule)")
            }
            let password = try Staff.readPassword()
            do { try StaffPassword.check(password) } catch { Staff.fail("medic-edge: \(error.description)") }
            let (_, db) = try options.openDatabase()
            do {
                try StaffAccounts(db: db, clock: SystemClock()).add(name: normalized, password: password, replace: replace)
            } catch StaffAccounts.AddError.exists {
                Staff.fail("medic-edge: staff account \"\(normalized)\" already exists (use --replace to set a new password, or staff remove)")
            }
            print(replace ? "staff account \"\(normalized)\" updated; its sessions were ended" : "staff account \"\(normalized)\" created")
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List the accounts (names, creation time, open sessions).")
        @OptionGroup var options: ConfigOption
        func run() async throws {
            let (_, db) = try options.openDatabase()
            let rows = try StaffAccounts(db: db, clock: SystemClock()).list()
            if rows.isEmpty { print("(no staff accounts; create one with: medic-edge staff add NAME)"); return }
            print(
                "name".padding(toLength: 24, withPad: " ", startingAt: 0) + "created".padding(toLength: 26, withPad: " ", startingAt: 0) + "sessions")
            for r in rows {
                print(
                    r.name.padding(toLength: 24, withPad: " ", startingAt: 0)
                        + Time.rfc3339(ms: r.createdMs).padding(toLength: 26, withPad: " ", startingAt: 0)
                        + String(r.sessions))
            }
        }
    }

    struct Remove: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Remove an account; its sessions end at once.")
        @OptionGroup var options: ConfigOption
        @Argument(help: "Login name.") var name: String
        func run() async throws {
            let (_, db) = try options.openDatabase()
            guard try StaffAccounts(db: db, clock: SystemClock()).remove(name: name) else {
                Staff.fail("medic-edge: no staff account named \"\(name)\"")
            }
            print("staff account \"\(StaffName.normalized(name) ?? name)\" removed")
        }
    }

    static func fail(_ message: String) -> Never {
        FileHandle.standardError.write(Data((message + "\n").utf8))
        Foundation.exit(1)
    }

    /// One line from standard input; on a terminal, asked twice without echo.
    static func readPassword() throws -> String {
        guard isatty(STDIN_FILENO) == 1 else {
            guard let line = readLine(strippingNewline: true) else { fail("medic-edge: no password on standard input (one line expected)") }
            return line
        }
        func ask(_ prompt: String) -> String {
            FileHandle.standardError.write(Data(prompt.utf8))
            var old = termios()
            tcgetattr(STDIN_FILENO, &old)
            var quiet = old
            quiet.c_lflag &= ~tcflag_t(ECHO)
            tcsetattr(STDIN_FILENO, TCSANOW, &quiet)
            defer { tcsetattr(STDIN_FILENO, TCSANOW, &old); FileHandle.standardError.write(Data("\n".utf8)) }
            return readLine(strippingNewline: true) ?? ""
        }
        let first = ask("Password (at least \(StaffPassword.minimumLength) characters): ")
        let second = ask("Again: ")
        guard first == second else { fail("medic-edge: the two passwords differ; nothing changed") }
        return first
    }
}
