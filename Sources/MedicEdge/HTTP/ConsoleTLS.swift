import EdgeCore
import Foundation
import Hummingbird
import HummingbirdTLS
import Logging
import NIOSSL

/// The console's HTTPS listener (`http.tls_listen`): the certificate chain and private key
/// (PEM) from `http.cert_file` / `http.key_file`, TLS 1.2 or newer.
enum ConsoleTLS {
    /// nil without `http.tls_listen`. Everything is loaded and checked here, at start-up, so
    /// a bad file stops the daemon with one line naming the key and the file (ConfigError),
    /// never later in the listener.
    /// The listener's TLS settings and the end of the certificate's validity (Unix seconds).
    struct Loaded { let tls: TLSConfiguration; let notValidAfter: Int64 }
    static func configuration(_ http: EdgeConfig.HTTP) throws -> Loaded? {
        guard http.tlsListen != nil else { return nil }
        guard let certFile = http.certFile else { throw ConfigError(key: "http.cert_file", problem: "required with http.tls_listen") }
        guard let keyFile = http.keyFile else { throw ConfigError(key: "http.key_file", problem: "required with http.tls_listen") }
        guard FileManager.default.isReadableFile(atPath: certFile) else {
            throw ConfigError(key: "http.cert_file", problem: "cannot read \(certFile)")
        }
        guard FileManager.default.isReadableFile(atPath: keyFile) else {
            throw ConfigError(key: "http.key_file", problem: "cannot read \(keyFile)")
        }
        let chain = (try? NIOSSLCertificate.fromPEMFile(certFile)) ?? []
        guard !chain.isEmpty else {
            throw ConfigError(
                key: "http.cert_file", problem: "\(certFile) holds no PEM certificate (expected the server certificate, then any intermediates)")
        }
        let key: NIOSSLPrivateKey
        do { key = try NIOSSLPrivateKey(file: keyFile, format: .pem) } catch {
            throw ConfigError(key: "http.key_file", problem: "\(keyFile) is not an unencrypted PEM private key")
        }
        var tls = TLSConfiguration.makeServerConfiguration(certificateChain: chain.map { .certificate($0) }, privateKey: .privateKey(key))
        tls.minimumTLSVersion = .tlsv12
        // Building the context checks that the key belongs to the (first) certificate.
        do { _ = try NIOSSLContext(configuration: tls) } catch {
            throw ConfigError(key: "http.key_file", problem: "\(keyFile) does not match the certificate in \(certFile)")
        }
        return Loaded(tls: tls, notValidAfter: Int64(chain[0].notValidAfter))
    }

    /// What to tell the technician about the certificate's end: an error once it has expired
    /// (browsers refuse the console), a warning in its last 30 days, nothing before.
    static func expiryNotice(notValidAfter: Int64, nowSeconds: Int64, certFile: String) -> (isError: Bool, text: String)? {
        let left = notValidAfter - nowSeconds
        let day = String(Time.rfc3339(ms: notValidAfter * 1000).prefix(10))
        if left <= 0 {
            return (
                true,
                "console: the certificate in http.cert_file \(certFile) expired on \(day); browsers refuse the console over HTTPS: re-run install.sh "
                    + "to reissue it"
            )
        }
        guard left < 30 * 86_400 else { return nil }
        let days = Int((left + 86_399) / 86_400)
        return (
            false,
            "console: the certificate in http.cert_file \(certFile) expires on \(day) (in \(days) day\(days == 1 ? "" : "s")): re-run install.sh to "
                + "reissue it"
        )
    }
}
