import EdgeCore
import EdgeHTTPClient
import EdgeTestSupport
import Foundation
import Testing

/// The reception console on the LAN over HTTPS (issue 7): the real daemon with
/// `http.tls_listen`, a CA and a server certificate made by the real `openssl`, requests
/// through libcurl with peer and host verification on.
@Suite("Console over HTTPS", .serialized)
struct ConsoleTLSTests {
    static let password = "senha-da-recepcao"

    /// A throwaway CA, a server certificate it signed (SAN IP:127.0.0.1, DNS:localhost), and
    /// a second, unrelated CA.
    struct PKI {
        let dir: String
        var ca: String { dir + "/ca.crt" }
        var cert: String { dir + "/server.crt" }
        var key: String { dir + "/server.key" }
        var otherCA: String { dir + "/other-ca.crt" }
        var otherKey: String { dir + "/other-ca.key" }
    }

    struct ToolFailed: Error, CustomStringConvertible { let description: String }

    /// Runs a tool to completion: (exit status, stdout+stderr). Bounded.
    static func run(_ tool: String, _ args: [String], timeout: Double = 20) async throws -> (Int32, String) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: tool)
        p.arguments = args
        let out = Pipe()
        p.standardOutput = out; p.standardError = out
        p.standardInput = FileHandle.nullDevice
        try p.run()
        let reader = Task.detached { out.fileHandleForReading.readDataToEndOfFile() }
        let deadline = Date().addingTimeInterval(timeout)
        while p.isRunning && Date() < deadline { try await Task.sleep(for: .milliseconds(20)) }
        if p.isRunning { await Harness.stop(p, timeout: 1); throw ToolFailed(description: "timed out: \(tool) \(args.joined(separator: " "))") }
        return (p.terminationStatus, String(decoding: await reader.value, as: UTF8.self))
    }

    static func openssl(_ args: [String]) async throws {
        let (code, out) = try await run("/usr/bin/openssl", args)
        guard code == 0 else { throw ToolFailed(description: "openssl \(args.first ?? "") failed: \(out)") }
    }

    static func makePKI() async throws -> PKI {
        let pki = PKI(dir: Harness.tempDir("tls"))
        let d = pki.dir
        try """
        [req]
        distinguished_name = dn
        [dn]
        [v3_ca]
        basicConstraints = critical, CA:TRUE, pathlen:0
        keyUsage = critical, keyCertSign, cRLSign
        subjectKeyIdentifier = hash
        """.write(toFile: d + "/ca.cnf", atomically: true, encoding: .utf8)
        try """
        basicConstraints = critical, CA:FALSE
        keyUsage = critical, digitalSignature
        extendedKeyUsage = serverAuth
        subjectKeyIdentifier = hash
        authorityKeyIdentifier = keyid, issuer
        subjectAltName = IP:127.0.0.1, DNS:localhost
        """.write(toFile: d + "/server.ext", atomically: true, encoding: .utf8)
        for (name, cn) in [("ca", "medic-edge test CA"), ("other-ca", "some other CA")] {
            try await openssl([
                "req", "-x509", "-config", d + "/ca.cnf", "-extensions", "v3_ca", "-newkey", "ec",
                "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "2", "-subj", "/CN=\(cn)",
                "-keyout", d + "/\(name).key", "-out", d + "/\(name).crt",
            ])
        }
        try await openssl([
            "req", "-new", "-config", d + "/ca.cnf", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-subj", "/CN=localhost", "-keyout", pki.key, "-out", d + "/server.csr",
        ])
        try await openssl([
            "x509", "-req", "-in", d + "/server.csr", "-CA", pki.ca, "-CAkey", d + "/ca.key", "-CAcreateserial",
            "-days", "2", "-sha256", "-extfile", d + "/server.ext", "-out", pki.cert,
        ])
        return pki
    }

    /// A broker and the daemon with the HTTPS listener on a free loopback port; stopped
    /// however the body ends.
    static func withDaemon(_ pki: PKI, _ body: (DaemonProcess, Int) async throws -> Void) async throws {
        let broker = try Broker()
        try await broker.start()
        let tlsPort = Harness.freePort()
        let daemon = try DaemonProcess(
            configYAML: DaemonProcess.standardConfig(
                mqttPort: broker.port,
                httpExtra: [
                    "tls_listen: \"127.0.0.1:\(tlsPort)\"", "cert_file: \"\(pki.cert)\"", "key_file: \"\(pki.key)\"",
                ]))
        do {
            let (code, out) = try await DaemonProcess.runCLI(["staff", "add", "recepcao", "--config", daemon.configPath], stdin: password + "\n")
            #expect(code == 0, "staff add failed: \(out)")
            try await daemon.start()
            try await Harness.waitUntil("the HTTPS listener on \(tlsPort)", timeout: 10) { Harness.canConnect(port: tlsPort) }
            // The test certificates are valid for 2 days: the daemon says so at start.
            try await Harness.waitUntil("the expiry warning in the log", timeout: 5) {
                daemon.log().contains("warning") && daemon.log().contains("console: the certificate in http.cert_file \(pki.cert) expires on")
            }
            try await body(daemon, tlsPort)
        } catch {
            _ = await daemon.terminate()
            await broker.stop()
            throw error
        }
        let status = await daemon.terminate()
        await broker.stop()
        #expect(status == 0, "the daemon exits 0 on SIGTERM with both listeners: \(daemon.log().suffix(600))")
    }

    static func loginBody() -> String {
        JSONText.object {
            $0.add("name", "recepcao"); $0.add("password", password)
        }
    }

    /// A transport error (not an HTTP answer) from `body`.
    static func transportError(_ body: () async throws -> HTTPResponse) async -> HTTPTransportError? {
        do {
            let r = try await body()
            Issue.record("expected a transport error, got HTTP \(r.status): \(r.text.prefix(200))")
            return nil
        } catch let e as HTTPTransportError {
            return e
        } catch {
            Issue.record("unexpected error: \(error)")
            return nil
        }
    }

    @Test("With the local CA: /healthz over HTTPS, staff log in, and the session cookie is Secure (not on the loopback HTTP listener)")
    func httpsLogin() async throws {
        let pki = try await Self.makePKI()
        try await Self.withDaemon(pki) { daemon, tlsPort in
            let http = CurlHTTPClient(label: "tls-test")
            let base = "https://127.0.0.1:\(tlsPort)"
            let health = try await http.send(HTTPRequest(url: base + "/healthz", connectTimeout: 2, timeout: 5, caFile: pki.ca))
            #expect(health.status == 200 && health.text.contains(#""status":"ok""#), "\(health.status) \(health.text)")
            // The certificate's DNS name works too.
            let byName = try await http.send(HTTPRequest(url: "https://localhost:\(tlsPort)/healthz", connectTimeout: 2, timeout: 5, caFile: pki.ca))
            #expect(byName.status == 200)

            let login = try await http.send(
                HTTPRequest(
                    method: "POST", url: base + "/api/v1/session", headers: [("Content-Type", "application/json")],
                    body: Array(Self.loginBody().utf8), connectTimeout: 2, timeout: 10, caFile: pki.ca))
            try #require(login.status == 200, "login over HTTPS: \(login.status) \(login.text)")
            let setCookie = try #require(login.headers["set-cookie"])
            let attributes = setCookie.split(separator: ";").map { $0.trimmingCharacters(in: .whitespaces).lowercased() }
            #expect(attributes.contains("secure"), "Set-Cookie over HTTPS: \(setCookie)")
            #expect(attributes.contains("httponly") && attributes.contains("samesite=strict"), "\(setCookie)")
            let token = try #require(try JSON.parse(login.body)["token"]?.stringValue)
            let cookie = String(try #require(setCookie.split(separator: ";").first))

            // The session works over HTTPS, by cookie and by bearer token, and the page is the console.
            let rooms = try await http.send(
                HTTPRequest(url: base + "/api/v1/rooms", headers: [("Cookie", cookie)], connectTimeout: 2, timeout: 5, caFile: pki.ca))
            #expect(rooms.status == 200, "\(rooms.status) \(rooms.text)")
            let page = try await http.send(
                HTTPRequest(url: base + "/", headers: [("Authorization", "Bearer \(token)")], connectTimeout: 2, timeout: 5, caFile: pki.ca))
            #expect(page.status == 200 && page.headers["content-type"]?.hasPrefix("text/html") == true)

            // The same login on the plain loopback listener: no Secure (the browser would drop it on http://).
            let plain = try await daemon.send("POST", "/api/v1/session", body: Self.loginBody())
            #expect(plain.status == 200, "\(plain.status) \(plain.text)")
            let plainCookie = plain.headers["set-cookie"] ?? ""
            #expect(!plainCookie.isEmpty && !plainCookie.lowercased().contains("secure"), "Set-Cookie over HTTP: \(plainCookie)")
        }
    }

    @Test("Without the CA, or trusting another CA, the certificate does not verify: a transport error, no answer")
    func verificationFails() async throws {
        let pki = try await Self.makePKI()
        try await Self.withDaemon(pki) { _, tlsPort in
            let url = "https://127.0.0.1:\(tlsPort)/healthz"
            // A fresh client each time: no connection is reused from a verified request.
            let systemTrust = await Self.transportError {
                try await CurlHTTPClient(label: "no-ca").send(HTTPRequest(url: url, connectTimeout: 2, timeout: 5))
            }
            #expect(systemTrust?.code == 60, "CURLE_PEER_FAILED_VERIFICATION expected: \(String(describing: systemTrust))")
            let otherCA = await Self.transportError {
                try await CurlHTTPClient(label: "other-ca").send(HTTPRequest(url: url, connectTimeout: 2, timeout: 5, caFile: pki.otherCA))
            }
            #expect(otherCA?.code == 60, "CURLE_PEER_FAILED_VERIFICATION expected: \(String(describing: otherCA))")
            // Control: the same request with the right CA answers.
            let ok = try await CurlHTTPClient(label: "ca").send(HTTPRequest(url: url, connectTimeout: 2, timeout: 5, caFile: pki.ca))
            #expect(ok.status == 200)
        }
    }

    @Test("Plain HTTP to the TLS port gets no console, and the HTTPS listener keeps serving")
    func plainHTTPToTLSPort() async throws {
        let pki = try await Self.makePKI()
        try await Self.withDaemon(pki) { _, tlsPort in
            for path in ["/", "/healthz"] {
                let e = await Self.transportError {
                    try await CurlHTTPClient(label: "plain").send(
                        HTTPRequest(url: "http://127.0.0.1:\(tlsPort)\(path)", connectTimeout: 2, timeout: 5))
                }
                #expect(e != nil)
            }
            let ok = try await CurlHTTPClient(label: "ca").send(
                HTTPRequest(url: "https://127.0.0.1:\(tlsPort)/healthz", connectTimeout: 2, timeout: 5, caFile: pki.ca))
            #expect(ok.status == 200)
        }
    }

    @Test("TLS 1.2 is the minimum: a TLS 1.1 client gets a protocol_version alert, a TLS 1.2 client completes the handshake")
    func minimumVersion() async throws {
        let pki = try await Self.makePKI()
        try await Self.withDaemon(pki) { _, tlsPort in
            let target = "127.0.0.1:\(tlsPort)"
            // SECLEVEL=0 lets this OpenSSL offer TLS 1.1 at all; the refusal must come from the server.
            let (old, oldOut) = try await Self.run(
                "/usr/bin/openssl",
                [
                    "s_client", "-connect", target, "-CAfile", pki.ca,
                    "-tls1_1", "-cipher", "DEFAULT@SECLEVEL=0",
                ])
            #expect(old != 0, "\(oldOut)")
            #expect(oldOut.contains("alert protocol version"), "the server refused the version: \(oldOut)")
            let (new, newOut) = try await Self.run(
                "/usr/bin/openssl",
                [
                    "s_client", "-connect", target, "-CAfile", pki.ca,
                    "-verify_return_error", "-tls1_2",
                ])
            #expect(new == 0 && newOut.contains("Verify return code: 0 (ok)"), "\(newOut)")
        }
    }

    @Test("A port already taken stops start-up with one line naming the listener's key and address, and systemd never hears READY=1")
    func portTaken() async throws {
        let pki = try await Self.makePKI()
        let broker = try Broker()
        try await broker.start()
        defer { Task { await broker.stop() } }
        // Another program holds a port: a listening socket of this test's own.
        let (fd, taken) = Harness.holdPort()
        defer { close(fd) }
        #expect(fd >= 0 && taken > 0)

        for key in ["http.tls_listen", "http.listen"] {
            let tlsPort = key == "http.tls_listen" ? taken : Harness.freePort()
            let daemon = try DaemonProcess(
                configYAML: DaemonProcess.standardConfig(
                    mqttPort: broker.port,
                    httpExtra: [
                        "tls_listen: \"127.0.0.1:\(tlsPort)\"", "cert_file: \"\(pki.cert)\"", "key_file: \"\(pki.key)\"",
                    ]), httpPort: key == "http.listen" ? taken : Harness.freePort())
            let notify = try NotifySocket()
            defer { notify.close() }
            let (code, out) = try await DaemonProcess.runCLI(["run", "--config", daemon.configPath], environment: ["NOTIFY_SOCKET": notify.path])
            #expect(code == 1, "\(key): \(out)")
            let named = out.split(separator: "\n").filter { $0.contains("cannot listen there") }
            #expect(named.count == 1, "\(key): one line naming the listener, got: \(out)")
            #expect(named.first?.contains("\(key) 127.0.0.1:\(taken)") == true, "\(key): \(out)")
            #expect(!notify.received().contains("READY=1"), "\(key): READY=1 was sent although a listener never came up")
        }
    }

    @Test("A bad certificate or key stops start-up with one line naming the key and the file")
    func badCertificate() async throws {
        let pki = try await Self.makePKI()
        let garbage = pki.dir + "/not-a-cert.pem"
        try "this is not a certificate\n".write(toFile: garbage, atomically: true, encoding: .utf8)
        let cases: [(cert: String, key: String, named: String, file: String)] = [
            (pki.dir + "/missing.crt", pki.key, "http.cert_file", pki.dir + "/missing.crt"),
            (garbage, pki.key, "http.cert_file", garbage),
            (pki.cert, garbage, "http.key_file", garbage),
            (pki.cert, pki.otherKey, "http.key_file", pki.otherKey),  // a key that does not match
        ]
        for c in cases {
            let daemon = try DaemonProcess(
                configYAML: DaemonProcess.standardConfig(
                    mqttPort: Harness.freePort(),
                    httpExtra: [
                        "tls_listen: \"127.0.0.1:\(Harness.freePort())\"", "cert_file: \"\(c.cert)\"", "key_file: \"\(c.key)\"",
                    ]))
            let (code, out) = try await DaemonProcess.runCLI(["run", "--config", daemon.configPath])
            #expect(code != 0, "\(c.named): \(out)")
            let lines = out.split(separator: "\n")
            #expect(lines.count == 1, "expected one line, got: \(out)")
            #expect(out.contains("config error: \(c.named):") && out.contains(c.file), "got: \(out)")
            #expect(!out.contains("Fatal error") && !out.contains("BEGIN"), "\(out)")
            #expect(!FileManager.default.fileExists(atPath: daemon.dataDir), "nothing is opened before the certificate is read")
        }
    }
}
