/// Unicode classes for `\p{…}`: general categories read from `Unicode.Scalar.Properties`
/// (computed once, on first use) and the scripts in `UnicodeScriptTables`.
enum UnicodeTables {
    private static let categories: [String: CharClass] = buildCategories()

    /// The class for a `\p` name as Go spells it (`L`, `Lu`, `Greek`, `Any`), or nil if unknown.
    static func named(_ name: String) -> CharClass? {
        if name == "Any" { return .any }
        if let c = categories[name] { return c }
        if let r = UnicodeScriptTables.scripts[name] { return CharClass(r) }
        return nil
    }

    private static func buildCategories() -> [String: CharClass] {
        var raw: [String: [ClosedRange<UInt32>]] = [:]
        var current: (code: String, lo: UInt32, hi: UInt32)?
        func flush() {
            if let c = current { raw[c.code, default: []].append(c.lo...c.hi) }
        }
        for v in UInt32(0)...CharClass.maxScalar {
            guard let s = Unicode.Scalar(v) else { continue }
            let code = categoryCode(s.properties.generalCategory)
            if let c = current, c.code == code, c.hi + 1 == v {
                current?.hi = v
            } else {
                flush()
                current = (code, v, v)
            }
        }
        flush()
        raw["Cs"] = [0xD800...0xDFFF]
        raw["Cn"] = nil
        var out: [String: CharClass] = [:]
        for (code, ranges) in raw {
            out[code] = CharClass(ranges)
            let major = String(code.prefix(1))
            out[major, default: CharClass()].add(CharClass(ranges))
        }
        for key in ["C", "L", "M", "N", "P", "S", "Z"] { out[key]?.normalize() }
        return out
    }

    private static func categoryCode(_ c: Unicode.GeneralCategory) -> String {
        switch c {
        case .uppercaseLetter: return "Lu"
        case .lowercaseLetter: return "Ll"
        case .titlecaseLetter: return "Lt"
        case .modifierLetter: return "Lm"
        case .otherLetter: return "Lo"
        case .nonspacingMark: return "Mn"
        case .spacingMark: return "Mc"
        case .enclosingMark: return "Me"
        case .decimalNumber: return "Nd"
        case .letterNumber: return "Nl"
        case .otherNumber: return "No"
        case .connectorPunctuation: return "Pc"
        case .dashPunctuation: return "Pd"
        case .openPunctuation: return "Ps"
        case .closePunctuation: return "Pe"
        case .initialPunctuation: return "Pi"
        case .finalPunctuation: return "Pf"
        case .otherPunctuation: return "Po"
        case .mathSymbol: return "Sm"
        case .currencySymbol: return "Sc"
        case .modifierSymbol: return "Sk"
        case .otherSymbol: return "So"
        case .spaceSeparator: return "Zs"
        case .lineSeparator: return "Zl"
        case .paragraphSeparator: return "Zp"
        case .control: return "Cc"
        case .format: return "Cf"
        case .surrogate: return "Cs"
        case .privateUse: return "Co"
        case .unassigned: return "Cn"
        @unknown default: return "Cn"
        }
    }
}
