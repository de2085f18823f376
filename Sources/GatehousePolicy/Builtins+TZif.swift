import Foundation

/// Zone abbreviations as Go prints them (layout "MST"): Go reads them from the system's zoneinfo
/// files, where Foundation on Linux only offers "GMT+1". The zone's offset and daylight saving
/// state still come from Foundation; the abbreviation is the one the TZif file gives that state
/// (the footer's POSIX rule first, then the local time types, newest first).
enum TZif {
    struct Zone: Sendable {
        /// (UTC offset in seconds, daylight saving, abbreviation), most relevant first.
        var names: [(offset: Int, dst: Bool, name: String)] = []
    }

    private final class Cache: @unchecked Sendable {
        let lock = NSLock()
        var zones: [String: Zone?] = [:]
    }
    private static let cache = Cache()

    static func abbreviation(zone identifier: String, offset: Int, dst: Bool) -> String? {
        guard let zone = load(identifier) else { return nil }
        return zone.names.first { $0.offset == offset && $0.dst == dst }?.name
    }

    static func load(_ identifier: String) -> Zone? {
        cache.lock.lock()
        defer { cache.lock.unlock() }
        if let z = cache.zones[identifier] { return z }
        var zone: Zone?
        if !identifier.contains(".."), !identifier.hasPrefix("/"),
           let data = FileManager.default.contents(atPath: "/usr/share/zoneinfo/" + identifier) {
            zone = parse(Array(data))
        }
        if cache.zones.count < 1000 { cache.zones[identifier] = zone }
        return zone
    }

    /// A TZif file (RFC 8536): the version 2+ block when present (64-bit times), else version 1.
    static func parse(_ b: [UInt8]) -> Zone? {
        func u32(_ i: Int) -> Int { i + 4 <= b.count ? Int(b[i]) << 24 | Int(b[i + 1]) << 16 | Int(b[i + 2]) << 8 | Int(b[i + 3]) : 0 }
        guard b.count >= 44, b[0..<4].elementsEqual(Array("TZif".utf8)) else { return nil }
        func blockSize(_ at: Int, timeSize: Int) -> Int {
            let (isut, isstd, leap, time, type, char) = (u32(at + 20), u32(at + 24), u32(at + 28), u32(at + 32), u32(at + 36), u32(at + 40))
            return 44 + time * timeSize + time + type * 6 + char + leap * (timeSize + 4) + isstd + isut
        }
        var at = 0, timeSize = 4
        if b[4] >= UInt8(ascii: "2") {
            at = blockSize(0, timeSize: 4)
            timeSize = 8
            guard at + 44 <= b.count else { return nil }
        }
        let (timecnt, typecnt, charcnt) = (u32(at + 32), u32(at + 36), u32(at + 40))
        let idx = at + 44 + timecnt * timeSize, types = idx + timecnt, chars = types + typecnt * 6
        guard chars + charcnt <= b.count else { return nil }
        func name(_ i: Int) -> String {
            let start = chars + min(i, charcnt)
            let end = b[start..<(chars + charcnt)].firstIndex(of: 0) ?? chars + charcnt
            return String(decoding: b[start..<end], as: UTF8.self)
        }
        func type(_ t: Int) -> (offset: Int, dst: Bool, name: String) {
            let p = types + t * 6
            return (Int(Int32(bitPattern: UInt32(u32(p)))), b[p + 4] != 0, name(Int(b[p + 5])))
        }
        var zone = Zone()
        if b[4] >= UInt8(ascii: "2") { zone.names += footerNames(b[(at + blockSize(at, timeSize: 8))...]) }
        var used = (0..<timecnt).map { Int(b[idx + $0]) }.filter { $0 < typecnt }.reversed().map { $0 }
        used += Array(0..<typecnt)
        for t in used { zone.names.append(type(t)) }
        return zone
    }

    /// The names in the footer's POSIX TZ string ("CET-1CEST,M3.5.0,M10.5.0/3", "<+04>-4").
    static func footerNames(_ footer: ArraySlice<UInt8>) -> [(offset: Int, dst: Bool, name: String)] {
        var s = Substring(String(decoding: footer, as: UTF8.self).trimmingCharacters(in: .newlines))
        func zoneName() -> String? {
            if s.first == "<" {
                guard let end = s.firstIndex(of: ">") else { return nil }
                defer { s = s[s.index(after: end)...] }
                return String(s[s.index(after: s.startIndex)..<end])
            }
            let n = s.prefix { $0.isLetter }
            s = s.dropFirst(n.count)
            return n.count >= 3 ? String(n) : nil
        }
        func offset() -> Int? {
            var sign = 1
            if let c = s.first, c == "+" || c == "-" { sign = c == "-" ? -1 : 1; s = s.dropFirst() }
            let parts = s.prefix { $0.isNumber || $0 == ":" }
            guard !parts.isEmpty else { return nil }
            s = s.dropFirst(parts.count)
            let hms = parts.split(separator: ":").map { Int($0) ?? 0 } + [0, 0]
            return sign * (hms[0] * 3600 + hms[1] * 60 + hms[2])
        }
        guard let std = zoneName(), let stdOff = offset() else { return [] }
        var names = [(offset: -stdOff, dst: false, name: std)]
        if let dst = zoneName() {
            let dstOff = s.first == "," || s.isEmpty ? stdOff - 3600 : (offset() ?? stdOff - 3600)
            names.append((offset: -dstOff, dst: true, name: dst))
        }
        return names
    }
}
