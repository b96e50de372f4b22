public import Foundation

/// The JSON form of ``InboundPolicy``: what the Policy stream carries and `starling authz -o json`
/// prints (keys sorted, so equal policies are equal bytes).
public enum InboundPolicyJSON {
    public static func encode(_ policy: InboundPolicy, pretty: Bool = false) throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = pretty ? [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes] : [.sortedKeys, .withoutEscapingSlashes]
        return try encoder.encode(policy)
    }

    public static func decode(_ data: Data) throws -> InboundPolicy {
        try JSONDecoder().decode(InboundPolicy.self, from: data)
    }
}
