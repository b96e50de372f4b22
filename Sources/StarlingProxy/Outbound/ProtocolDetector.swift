public import NIOCore

/// Decides from a connection's first bytes which protocol the client speaks (pure; see
/// ``ProtocolDetectionHandler``).
public struct ProtocolDetector: Sendable, Hashable {
    public enum Detected: Sendable, Hashable {
        /// The HTTP/2 client connection preface (prior knowledge, h2c).
        case http2
        /// An HTTP/1 request line (`METHOD SP ...`).
        case http1
        /// Anything else.
        case unknown
    }

    public enum Decision: Sendable, Hashable {
        case needMoreBytes
        case detected(Detected)
    }

    public static let http2Preface: [UInt8] = Array("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".utf8)
    /// The longest method token accepted before its space (`PROPPATCH`, extension methods).
    public static let maximumMethodLength = 24

    /// Classifies `bytes`, the first bytes of the connection (everything read so far).
    public static func decide(_ bytes: ByteBuffer) -> Decision {
        let view = bytes.readableBytesView
        let prefaceCount = min(view.count, http2Preface.count)
        if view.prefix(prefaceCount).elementsEqual(http2Preface.prefix(prefaceCount)) {
            return view.count >= http2Preface.count ? .detected(.http2) : .needMoreBytes
        }
        var length = 0
        for byte in view {
            if byte == UInt8(ascii: " ") {
                return length > 0 ? .detected(.http1) : .detected(.unknown)
            }
            // Method tokens: RFC 9110 tchar; real clients send upper-case letters (and '-').
            let isToken = (byte >= UInt8(ascii: "A") && byte <= UInt8(ascii: "Z")) || byte == UInt8(ascii: "-")
            guard isToken else { return .detected(.unknown) }
            length += 1
            if length > maximumMethodLength { return .detected(.unknown) }
        }
        return .needMoreBytes
    }
}
