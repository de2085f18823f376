/// A URL as it may be shown (admin API, metric labels, logs): userinfo and query values
/// hidden, because an upstream's URL may carry credentials (`http://user:PW@host/mcp?api_key=…`).
public enum DisplayURL {
    public static func redacted(_ url: String) -> String {
        guard let schemeEnd = url.range(of: "://") else { return url }
        var out = String(url[..<schemeEnd.upperBound])
        let rest = url[schemeEnd.upperBound...]
        let authorityEnd = rest.firstIndex(where: { $0 == "/" || $0 == "?" || $0 == "#" }) ?? rest.endIndex
        let authority = rest[..<authorityEnd]
        if let at = authority.lastIndex(of: "@") {
            out += "***@" + authority[authority.index(after: at)...]
        } else {
            out += authority
        }
        var tail = rest[authorityEnd...]
        var fragment = Substring("")
        if let hash = tail.firstIndex(of: "#") {
            fragment = tail[hash...]
            tail = tail[..<hash]
        }
        if let question = tail.firstIndex(of: "?") {
            out += tail[..<question] + "?"
            let pairs = tail[tail.index(after: question)...].split(separator: "&", omittingEmptySubsequences: false).map { pair -> String in
                guard let equals = pair.firstIndex(of: "=") else { return String(pair) }
                return pair[..<equals] + "=<redacted>"
            }
            out += pairs.joined(separator: "&")
        } else {
            out += tail
        }
        return out + fragment
    }
}
