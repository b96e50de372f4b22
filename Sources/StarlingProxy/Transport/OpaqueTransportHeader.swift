public import NIOCore

/// The header a dialing proxy sends first on an opaque (`starling-opaque`) mesh connection:
/// 4 bytes ASCII `SOT1`, a 2-byte big-endian length N (1…1024), then N bytes of UTF-8 target
/// authority (`svc.ns.svc.cluster.local:PORT`). Raw bytes follow in both directions.
public struct OpaqueTransportHeader: Sendable, Hashable {
    /// The magic that opens the header.
    public static let magic: [UInt8] = Array("SOT1".utf8)
    /// The longest authority the header may carry.
    public static let maximumAuthorityLength = 1024

    /// The service authority the caller is reaching.
    public var authority: String

    public init(authority: String) {
        self.authority = authority
    }

    /// Appends the encoded header to `buffer`.
    ///
    /// - Throws: `ProxyError.badRequest` when the authority is empty or longer than 1024 bytes.
    public func encode(into buffer: inout ByteBuffer) throws(ProxyError) {
        let bytes = Array(authority.utf8)
        guard (1...Self.maximumAuthorityLength).contains(bytes.count) else {
            throw ProxyError(
                .badRequest, "the opaque target authority is \(bytes.count) bytes; it must be 1…\(Self.maximumAuthorityLength)")
        }
        buffer.writeBytes(Self.magic)
        buffer.writeInteger(UInt16(bytes.count), endianness: .big)
        buffer.writeBytes(bytes)
    }

    /// The encoded header as a new buffer.
    public func encoded(allocator: ByteBufferAllocator = ByteBufferAllocator()) throws(ProxyError) -> ByteBuffer {
        var buffer = allocator.buffer(capacity: 6 + authority.utf8.count)
        try encode(into: &buffer)
        return buffer
    }

    /// Reads a header from the front of `buffer`.
    ///
    /// - Returns: the header, with `buffer` advanced past it; nil (and `buffer` untouched) when more
    ///   bytes are needed.
    /// - Throws: `ProxyError.upstreamProtocol` for a wrong magic, a length outside 1…1024 or an
    ///   authority that is not UTF-8.
    public static func decode(from buffer: inout ByteBuffer) throws(ProxyError) -> OpaqueTransportHeader? {
        let available = buffer.readableBytes
        let prefix = buffer.getBytes(at: buffer.readerIndex, length: min(available, 4)) ?? []
        guard prefix == Array(magic.prefix(prefix.count)) else {
            throw ProxyError(.upstreamProtocol, "the opaque transport header does not start with SOT1")
        }
        guard available >= 6, let length = buffer.getInteger(at: buffer.readerIndex + 4, endianness: .big, as: UInt16.self)
        else { return nil }
        guard (1...maximumAuthorityLength).contains(Int(length)) else {
            throw ProxyError(.upstreamProtocol, "the opaque transport header names an authority of \(length) bytes")
        }
        guard available >= 6 + Int(length) else { return nil }
        let bytes = buffer.getBytes(at: buffer.readerIndex + 6, length: Int(length)) ?? []
        guard let authority = String(validating: bytes, as: UTF8.self) else {
            throw ProxyError(.upstreamProtocol, "the opaque transport header's authority is not UTF-8")
        }
        buffer.moveReaderIndex(forwardBy: 6 + Int(length))
        return OpaqueTransportHeader(authority: authority)
    }
}
