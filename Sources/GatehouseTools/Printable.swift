/// Text from an upstream made safe to print on an operator's terminal or in a log line:
/// control characters (C0, DEL, C1), bidirectional controls and other invisible format
/// characters are written as `\u{XXXX}`. A tool name is chosen by the server; printed raw, an
/// escape sequence could retitle the terminal, overwrite lines or write the clipboard.
public enum Printable {
    public static func escaped(_ text: String) -> String {
        guard text.unicodeScalars.contains(where: needsEscape) else { return text }
        var out = ""
        out.reserveCapacity(text.utf8.count + 8)
        for scalar in text.unicodeScalars {
            if needsEscape(scalar) {
                out += "\\u{" + String(scalar.value, radix: 16, uppercase: true) + "}"
            } else {
                out.unicodeScalars.append(scalar)
            }
        }
        return out
    }

    static func needsEscape(_ scalar: Unicode.Scalar) -> Bool {
        switch scalar.value {
        case 0x00...0x1F, 0x7F...0x9F: return true
        case 0x200B...0x200F, 0x202A...0x202E, 0x2060...0x2069, 0xFEFF, 0xE0000...0xE007F: return true
        default: return false
        }
    }
}
