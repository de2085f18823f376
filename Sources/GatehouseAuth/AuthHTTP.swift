import Foundation
import MCPWire

/// The HTTP front's request, reduced to what the authorization server reads. The server layer
/// fills it in; the authorization server never sees the web framework.
public struct AuthHTTPRequest: Sendable {
    public var method: String
    public var path: String
    public var query: [(String, String)]
    /// `application/x-www-form-urlencoded` fields of a POST.
    public var form: [(String, String)]
    /// The raw body (JSON for registration).
    public var body: [UInt8]
    /// Lowercased names.
    public var headers: [String: String]
    /// The caller's IP address (the peer, or the client a trusted proxy names): sign-in throttling.
    public var clientAddress: String?

    public init(method: String, path: String, query: [(String, String)], form: [(String, String)], body: [UInt8], headers: [String: String],
                clientAddress: String? = nil)
    {
        self.method = method
        self.path = path
        self.query = query
        self.form = form
        self.body = body
        self.headers = headers
        self.clientAddress = clientAddress
    }

    public var cookies: [String: String] {
        var result: [String: String] = [:]
        for part in (headers["cookie"] ?? "").split(separator: ";") {
            let pair = part.split(separator: "=", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
            if pair.count == 2 { result[pair[0]] = pair[1] }
        }
        return result
    }

    /// Parses `a=b&c=d` (form or query), percent-decoding and turning '+' into spaces.
    public static func parseForm(_ text: String) -> [(String, String)] {
        text.split(separator: "&").compactMap { part in
            let pair = part.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            func decode(_ s: Substring) -> String { String(s).replacingOccurrences(of: "+", with: " ").removingPercentEncoding ?? String(s) }
            guard let name = pair.first else { return nil }
            return (decode(name), pair.count > 1 ? decode(pair[1]) : "")
        }
    }
}

public struct AuthHTTPResponse: Sendable {
    public var status: Int
    public var headers: [(String, String)]
    public var body: [UInt8]

    public init(status: Int, headers: [(String, String)] = [], body: [UInt8] = []) {
        self.status = status
        self.headers = headers
        self.body = body
    }

    static let noStore: [(String, String)] = [("Cache-Control", "no-store"), ("Pragma", "no-cache")]

    static func json(_ status: Int, _ value: JSONValue, headers: [(String, String)] = []) -> AuthHTTPResponse {
        AuthHTTPResponse(status: status, headers: [("Content-Type", "application/json")] + noStore + headers, body: JSONWriter.bytes(value))
    }

    /// An RFC 6749 error answer.
    static func oauthError(_ status: Int, _ error: String, _ description: String, headers: [(String, String)] = []) -> AuthHTTPResponse {
        json(status, ["error": .string(error), "error_description": .string(description)], headers: headers)
    }

    static func redirect(_ location: String) -> AuthHTTPResponse {
        AuthHTTPResponse(status: 302, headers: [("Location", location)] + noStore)
    }
}

extension Array where Element == (String, String) {
    /// The single value of a parameter; nil when absent. Repeated parameters are refused by callers via `repeated`.
    func value(_ name: String) -> String? { first { $0.0 == name }?.1 }
    func repeated(_ names: [String]) -> String? {
        names.first { name in self.count(where: { $0.0 == name }) > 1 }
    }
}
