/// `Mcp-Session-Id` values: 256 random bits from the system CSPRNG (getrandom on Linux),
/// base64url without padding — 43 visible ASCII characters, unguessable.
public enum SessionID {
    private static let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_".utf8)

    public static func generate() -> String {
        var rng = SystemRandomNumberGenerator()
        // Four 64-bit draws (four getrandom calls, not one per character) give 256 bits.
        let words = (0..<4).map { _ in rng.next() }
        var out: [UInt8] = []
        out.reserveCapacity(43)
        for index in 0..<43 {
            let bit = index * 6
            let word = words[bit / 64] >> UInt64(bit % 64)
            // 6-bit groups that straddle two words take their high bits from the next one.
            let spill = bit % 64 > 58 && bit / 64 < 3 ? words[bit / 64 + 1] << UInt64(64 - bit % 64) : 0
            out.append(alphabet[Int((word | spill) & 63)])
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// Session ids must be visible ASCII (0x21...0x7E) and of sane length.
    public static func isWellFormed(_ id: String) -> Bool {
        !id.isEmpty && id.utf8.count <= 8192 && id.utf8.allSatisfy { $0 >= 0x21 && $0 <= 0x7E }
    }
}
