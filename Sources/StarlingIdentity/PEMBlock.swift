import Foundation

/// One `-----BEGIN LABEL----- … -----END LABEL-----` block of a PEM text, decoded.
///
/// Starling reads PEM itself rather than through `PEMDocument` so that a file holding several blocks
/// of different kinds (openssl's `EC PARAMETERS` + `EC PRIVATE KEY`, a bundle of certificates, a
/// certificate next to its key) can be told apart and described precisely in errors.
struct PEMBlock: Sendable {
    /// The label between `BEGIN ` and the dashes, e.g. `CERTIFICATE`.
    var label: String
    /// RFC 1421 headers such as `Proc-Type: 4,ENCRYPTED`, keyed by name.
    var headers: [String: String]
    /// The decoded body.
    var der: [UInt8]

    /// True when the block is a legacy password-protected PEM (`Proc-Type: 4,ENCRYPTED`).
    var isLegacyEncrypted: Bool {
        headers["Proc-Type"].map { $0.uppercased().contains("ENCRYPTED") } ?? false
    }

    /// Parses every block of `text`. Text outside blocks (openssl's `Bag Attributes`, comments) is
    /// ignored. Throws when there are no blocks at all or a block is broken.
    static func parseAll(_ text: String, source: String) throws(IdentityError) -> [PEMBlock] {
        var blocks: [PEMBlock] = []
        var currentLabel: String?
        var headers: [String: String] = [:]
        var body = ""
        var inHeaders = false
        var lineNumber = 0

        for rawLine in text.split(omittingEmptySubsequences: false, whereSeparator: { $0 == "\n" || $0 == "\r\n" }) {
            lineNumber += 1
            let line = rawLine.trimmingCharacters(in: .whitespacesAndNewlines)
            if let label = currentLabel {
                if line.hasPrefix("-----END ") {
                    let endLabel = Self.label(of: line, prefix: "-----END ")
                    guard endLabel == label else {
                        throw .malformedPEM(
                            "\(source): line \(lineNumber) ends a '\(endLabel ?? line)' block inside a '\(label)' block"
                        )
                    }
                    guard let data = Data(base64Encoded: body), !data.isEmpty else {
                        throw .malformedPEM(
                            "\(source): the '\(label)' block ending on line \(lineNumber) is not valid base64"
                        )
                    }
                    blocks.append(PEMBlock(label: label, headers: headers, der: [UInt8](data)))
                    currentLabel = nil
                    continue
                }
                if inHeaders {
                    if line.isEmpty {
                        inHeaders = false
                        continue
                    }
                    if let colon = line.firstIndex(of: ":"), body.isEmpty {
                        let name = line[..<colon].trimmingCharacters(in: .whitespaces)
                        let value = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
                        headers[name] = value
                        continue
                    }
                    inHeaders = false
                }
                body += line
            } else if line.hasPrefix("-----BEGIN ") {
                guard let label = Self.label(of: line, prefix: "-----BEGIN ") else {
                    throw .malformedPEM("\(source): line \(lineNumber) is not a valid PEM BEGIN line: \(line)")
                }
                currentLabel = label
                headers = [:]
                body = ""
                inHeaders = true
            }
        }
        if let label = currentLabel {
            throw .malformedPEM("\(source): the '\(label)' block has no -----END \(label)----- line (file truncated?)")
        }
        if blocks.isEmpty {
            if text.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty {
                throw .malformedPEM("\(source) is empty")
            }
            throw .malformedPEM("\(source) is not PEM: no -----BEGIN ...----- line found")
        }
        return blocks
    }

    private static func label(of line: String, prefix: String) -> String? {
        guard line.hasPrefix(prefix), line.hasSuffix("-----") else { return nil }
        let inner = line.dropFirst(prefix.count).dropLast(5)
        guard !inner.isEmpty, !inner.hasPrefix(" "), !inner.hasSuffix(" ") else { return nil }
        return String(inner)
    }

    /// Encodes `der` as a PEM block with 64-character lines and a trailing newline.
    static func encode(label: String, der: [UInt8]) -> String {
        let base64 = Data(der).base64EncodedString()
        var out = "-----BEGIN \(label)-----\n"
        out.reserveCapacity(base64.count + base64.count / 64 + 2 * label.count + 40)
        var index = base64.startIndex
        while index < base64.endIndex {
            let end = base64.index(index, offsetBy: 64, limitedBy: base64.endIndex) ?? base64.endIndex
            out += base64[index..<end]
            out += "\n"
            index = end
        }
        out += "-----END \(label)-----\n"
        return out
    }

    /// A human description of what a block of this label holds, for "holds X, not Y" messages.
    static func describe(label: String) -> String {
        switch label {
        case "CERTIFICATE", "TRUSTED CERTIFICATE", "X509 CERTIFICATE": return "a certificate"
        case "PRIVATE KEY", "EC PRIVATE KEY", "RSA PRIVATE KEY", "DSA PRIVATE KEY", "OPENSSH PRIVATE KEY":
            return "a private key"
        case "ENCRYPTED PRIVATE KEY": return "an encrypted private key"
        case "PUBLIC KEY", "RSA PUBLIC KEY": return "a public key"
        case "CERTIFICATE REQUEST", "NEW CERTIFICATE REQUEST": return "a certificate signing request"
        case "EC PARAMETERS": return "EC parameters"
        case "X509 CRL": return "a certificate revocation list"
        default: return "a '\(label)' block"
        }
    }

    static func isPrivateKeyLabel(_ label: String) -> Bool {
        label.hasSuffix("PRIVATE KEY")
    }
}
