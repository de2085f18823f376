import Crypto
import Foundation
import GatehouseConfig
import Hummingbird
import HummingbirdCore
import HummingbirdHTTP2
import HummingbirdTLS
import Logging
import NIOCore
import NIOSSL
import Synchronization

/// The listener's certificate and key, read again when the files change: every TLS handshake
/// takes the current pair (through NIOSSL's context callback), so a rotated certificate is
/// served to new connections without a restart. A pair that does not load is refused (logged)
/// and the previous one stays.
final class TLSCertificates: Sendable {
    let config: GatewayConfig.TLS
    let logger: Logger
    private struct Loaded: Sendable {
        var chain: [NIOSSLCertificate]
        var key: NIOSSLPrivateKey
        var fingerprint: String
    }

    private let current: Mutex<Loaded>
    /// What was last refused, so a broken file is reported once, not every 5 seconds.
    private let refused = Mutex<String?>(nil)

    init(config: GatewayConfig.TLS, logger: Logger) throws {
        self.config = config
        self.logger = logger
        self.current = Mutex(try Self.load(config))
    }

    struct TLSFileError: Error, CustomStringConvertible {
        var description: String
    }

    private static func load(_ config: GatewayConfig.TLS) throws -> Loaded {
        let certificateBytes: [UInt8]
        let keyBytes: [UInt8]
        do {
            certificateBytes = Array(try Data(contentsOf: URL(fileURLWithPath: config.certificateFile)))
            keyBytes = Array(try Data(contentsOf: URL(fileURLWithPath: config.keyFile)))
        } catch {
            throw TLSFileError(description: "cannot read the TLS certificate or key: \(error.localizedDescription)")
        }
        let chain: [NIOSSLCertificate]
        let key: NIOSSLPrivateKey
        do {
            chain = try NIOSSLCertificate.fromPEMBytes(certificateBytes)
        } catch {
            throw TLSFileError(description: "\(config.certificateFile) holds no PEM certificate")
        }
        do {
            key = try NIOSSLPrivateKey(bytes: keyBytes, format: .pem)
        } catch {
            throw TLSFileError(description: "\(config.keyFile) holds no PEM private key")
        }
        guard !chain.isEmpty else { throw TLSFileError(description: "\(config.certificateFile) holds no PEM certificate") }
        // BoringSSL refuses a key that does not belong to the certificate: a half-written
        // renewal (new certificate, old key) is refused instead of breaking every handshake.
        do {
            _ = try NIOSSLContext(configuration: .makeServerConfiguration(certificateChain: chain.map { .certificate($0) }, privateKey: .privateKey(key)))
        } catch {
            throw TLSFileError(description: "the key in \(config.keyFile) does not belong to the certificate in \(config.certificateFile)")
        }
        var hasher = SHA256()
        hasher.update(data: Data(certificateBytes))
        hasher.update(data: Data(keyBytes))
        return Loaded(chain: chain, key: key, fingerprint: hasher.finalize().map { String(format: "%02x", $0) }.joined())
    }

    /// Reloads the files if their content changed; true when a new pair was installed.
    @discardableResult
    func reloadIfChanged() -> Bool {
        do {
            let loaded = try Self.load(config)
            refused.withLock { $0 = nil }
            return current.withLock { state in
                guard state.fingerprint != loaded.fingerprint else { return false }
                state = loaded
                return true
            }
        } catch {
            let problem = "\(error)"
            let first = refused.withLock { last -> Bool in
                defer { last = problem }
                return last != problem
            }
            if first { logger.error("TLS certificate reload refused; the previous certificate stays", metadata: ["error": "\(problem)"]) }
            return false
        }
    }

    /// The server's TLS settings: TLS 1.2 and later with NIOSSL's modern default ciphers, ALPN
    /// h2 and http/1.1, client certificates verified against `clientCAFile` when set.
    func serverConfiguration() -> TLSConfiguration {
        let loaded = current.withLock { $0 }
        var tls = TLSConfiguration.makeServerConfiguration(certificateChain: loaded.chain.map { .certificate($0) }, privateKey: .privateKey(loaded.key))
        tls.minimumTLSVersion = .tlsv12
        tls.applicationProtocols = config.http2 ? ["h2", "http/1.1"] : ["http/1.1"]
        if let ca = config.clientCAFile {
            tls.trustRoots = .file(ca)
            tls.certificateVerification = config.clientCertificates == .required ? .noHostnameVerification : .optionalVerification
        }
        tls.sslContextCallback = { [self] _, promise in
            let loaded = current.withLock { $0 }
            var override = NIOSSLContextConfigurationOverride()
            override.certificateChain = loaded.chain.map { .certificate($0) }
            override.privateKey = .privateKey(loaded.key)
            promise.succeed(override)
        }
        return tls
    }

    /// Hummingbird's server with TLS, and HTTP/2 when enabled.
    /// Idle connections close after `idleTimeoutSeconds` (`spec.limits`), as on the plaintext front.
    func serverBuilder(idleTimeoutSeconds: Double) throws -> HTTPServerBuilder {
        let tls = serverConfiguration()
        let idle = TimeAmount.nanoseconds(Int64(idleTimeoutSeconds * 1e9))
        let http1 = HTTP1Channel.Configuration(idleTimeout: idle)
        if config.http2 {
            let configuration = HTTP2UpgradeChannel.Configuration(idleTimeout: .nanoseconds(idle.nanoseconds), streamConfiguration: http1)
            return try .http2Upgrade(tlsConfiguration: tls, configuration: configuration)
        }
        return try .tls(.http1(configuration: http1), tlsConfiguration: tls)
    }
}

/// The verified client certificate of a TLS connection (mTLS), as an identity source.
struct ClientCertificate: Sendable {
    var subject: String
    var issuer: String?

    /// The peer certificate NIOSSL verified on `channel`'s connection (for HTTP/2 streams, the
    /// parent connection), or nil.
    static func of(_ channel: any Channel) async -> ClientCertificate? {
        // HTTP/1.1: the request's channel is the TLS connection. HTTP/2: it is a stream whose
        // parent is the connection. (A connection's own parent is the listening socket.)
        var certificate: NIOSSLCertificate?
        for candidate in [channel, channel.parent].compactMap({ $0 }) {
            if let found = try? await candidate.eventLoop.submit({ try candidate.pipeline.syncOperations.nioSSL_peerCertificate() }).get() {
                certificate = found
                break
            }
        }
        guard let certificate else { return nil }
        let subject = certificate.subjectName.first { $0.type == .commonName }?.value
            ?? certificate.subjectName.map(\.value).joined(separator: ",")
        return ClientCertificate(subject: subject, issuer: certificate.issuerName.first { $0.type == .commonName }?.value)
    }
}
