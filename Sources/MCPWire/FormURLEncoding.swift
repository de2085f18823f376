import Foundation

/// `application/x-www-form-urlencoded` values (OAuth token requests, Basic credentials per
/// RFC 6749 §2.3.1): everything but unreserved characters is percent-encoded.
public enum FormURLEncoding {
    static let unreserved: CharacterSet = {
        var allowed = CharacterSet.alphanumerics
        allowed.insert(charactersIn: "-._~")
        return allowed
    }()

    public static func encode(_ text: String) -> String {
        text.addingPercentEncoding(withAllowedCharacters: unreserved) ?? text
    }
}
